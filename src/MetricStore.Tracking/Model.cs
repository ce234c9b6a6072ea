using MetricStore.Core;

namespace MetricStore.Tracking;

public sealed record Experiment(
    long Id,
    string Name,
    string Description,
    IReadOnlyDictionary<string, string> Tags,
    long CreatedTimeMs);

/// <summary>Where a run came from, as the client captured it at start. Empty strings mean unknown.</summary>
public sealed record SourceInfo
{
    public static readonly SourceInfo Empty = new();

    public string GitCommit { get; init; } = "";
    public string GitBranch { get; init; } = "";
    public string GitRemote { get; init; } = "";
    public bool GitDirty { get; init; }
    public string CommandLine { get; init; } = "";
    public string Host { get; init; } = "";
    public string Os { get; init; } = "";
    public string Runtime { get; init; } = "";
    public string User { get; init; } = "";
}

/// <summary>Markdown the team writes about a run: what it should show and what it showed.</summary>
public sealed record Note(string Hypothesis, string Outcome)
{
    public static readonly Note Empty = new("", "");
}

public sealed record Run(
    string Id,
    long ExperimentId,
    string ExperimentName,
    string Name,
    RunStatus Status,
    long StartTimeMs,
    long? EndTimeMs,
    string? ParentRunId,
    IReadOnlyDictionary<string, string> Params,
    IReadOnlyDictionary<string, string> Tags,
    Note Note,
    SourceInfo Source);

/// <summary>What a caller gives to create a run. Exactly one of ExperimentId and ExperimentName.</summary>
public sealed record NewRun
{
    public long ExperimentId { get; init; }
    public string? ExperimentName { get; init; }
    public string? Name { get; init; }
    public IReadOnlyDictionary<string, string>? Params { get; init; }
    public IReadOnlyDictionary<string, string>? Tags { get; init; }
    public SourceInfo? Source { get; init; }
    public string? ParentRunId { get; init; }
    public long StartTimeMs { get; init; }
    public Note? Note { get; init; }
}

/// <summary>One page of a listing; NextPageToken is null on the last page.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextPageToken);
