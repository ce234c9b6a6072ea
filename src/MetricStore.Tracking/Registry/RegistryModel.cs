namespace MetricStore.Tracking.Registry;

/// <summary>What a user may do; each role includes the ones before it.</summary>
public enum Role
{
    /// <summary>Reads everything: runs, metrics, artifacts, models; resolves and pulls models.</summary>
    Reader = 1,

    /// <summary>Also creates and logs runs, metrics, artifacts, models, versions; requests transitions; sets unprotected aliases.</summary>
    Writer = 2,

    /// <summary>Also approves or rejects requests of other users and sets protected aliases.</summary>
    Approver = 3,

    /// <summary>Everything.</summary>
    Admin = 4,
}

/// <summary>Who makes a call: a user and their role (without --auth, the local admin).</summary>
public sealed record Actor(string Name, Role Role)
{
    /// <summary>The identity of every call when the server runs without authentication.</summary>
    public static readonly Actor LocalAdmin = new("local", Role.Admin);
}

/// <summary>A version's stage, numbered as the proto's Stage.</summary>
public enum Stage
{
    None = 0,
    Staging = 1,
    Production = 2,
    Archived = 3,
}

/// <summary>A transition request's state, numbered as the proto's RequestState.</summary>
public enum RequestState
{
    Pending = 1,
    Approved = 2,
    Rejected = 3,
    Cancelled = 4,
}

public sealed record UserInfo(string Name, Role Role, long CreatedTimeMs);

public sealed record ModelInfo(
    string Name,
    string Description,
    IReadOnlyDictionary<string, string> Tags,
    long CreatedTimeMs,
    string CreatedBy,
    IReadOnlyDictionary<string, long> Aliases,
    long LatestVersion);

public sealed record VersionInfo(
    string Model,
    long Version,
    string RunId,
    string ArtifactPath,
    string ArtifactSha256,
    long ArtifactSize,
    IReadOnlyDictionary<string, string> Params,
    IReadOnlyDictionary<string, double> Metrics,
    string InputSchema,
    string OutputSchema,
    string Description,
    string CreatedBy,
    long CreatedTimeMs,
    Stage Stage,
    IReadOnlyList<string> Aliases);

public sealed record NewVersion(string Model, string RunId, string ArtifactPath, string? InputSchema, string? OutputSchema, string? Description);

public sealed record TransitionInfo(
    long Id,
    string Model,
    long Version,
    Stage From,
    Stage To,
    RequestState State,
    string RequestedBy,
    string DecidedBy,
    string RequestComment,
    string DecisionComment,
    long CreatedTimeMs,
    long DecidedTimeMs,
    bool ArchiveExisting);

public sealed record AuditEntry(long Id, long TimeMs, string Actor, string Action, string Model, long Version, string From, string To, string Comment, bool Allowed);

public sealed record WebhookInfo(long Id, string Model, string Url, IReadOnlyList<string> Events, long CreatedTimeMs);

public sealed record DeliveryInfo(long Id, long WebhookId, string Event, int Attempts, int LastStatusCode, string LastError, bool Delivered, long CreatedTimeMs);

/// <summary>A delivery that is due: what to POST where, signed with the webhook's secret.</summary>
public sealed record PendingDelivery(long Id, long WebhookId, string Url, string Secret, string Event, string Payload, int Attempts);
