using System.Globalization;
using System.Text.Json;
using MetricStore.Core;
using MetricStore.Tracking.Registry;
using Microsoft.Data.Sqlite;

namespace MetricStore.Tracking;

/// <summary>
/// The model registry. Every change runs in one IMMEDIATE transaction that also appends its audit
/// record and queues its webhook deliveries (an outbox), so a change, its audit record and its
/// events commit together or not at all. A refused attempt changes nothing and is audited apart
/// with allowed = false and the reason.
/// </summary>
public sealed partial class TrackingStore
{
    public const int MaxModelNameLength = 256;
    public const int MaxAliasLength = 64;
    public const int MaxCommentLength = 4096;
    public const int MaxSchemaLength = 65536;

    /// <summary>The model tag that lists its protected aliases (comma-separated); without it, "champion" is protected.</summary>
    public const string ProtectedAliasesTag = "protected_aliases";

    private static readonly string[] s_defaultProtectedAliases = ["champion"];

    // ---- models and versions ----

    public ModelInfo CreateModel(Actor actor, string name, string? description, IReadOnlyDictionary<string, string>? tags)
    {
        CheckModelName(name);
        Validate.Text("description", description, Limits.MaxDescriptionLength);
        ValidateEntries("tags", tags, Limits.MaxTagValueLength);
        return Audited(actor, "create_model", name, 0, "", (connection, tx) =>
        {
            RequireRole(actor, Role.Writer, "create a model");
            using (var exists = Command(connection, tx, "SELECT 1 FROM models WHERE name = $n"))
            {
                exists.Parameters.AddWithValue("$n", name);
                if (exists.ExecuteScalar() is not null)
                {
                    MetricStoreException.Throw(ErrorCode.AlreadyExists, $"model '{name}' already exists");
                }
            }

            using (var insert = Command(connection, tx, "INSERT INTO models (name, description, created_ms, created_by) VALUES ($n, $d, $t, $a)"))
            {
                insert.Parameters.AddWithValue("$n", name);
                insert.Parameters.AddWithValue("$d", description ?? "");
                insert.Parameters.AddWithValue("$t", NowMs());
                insert.Parameters.AddWithValue("$a", actor.Name);
                insert.ExecuteNonQuery();
            }

            if (tags is { Count: > 0 })
            {
                UpsertEntries(connection, tx, "model_tags", "model", name, tags);
            }

            AppendAudit(connection, tx, actor, "create_model", name, 0, "", "", "", allowed: true);
            return ReadModel(connection, tx, name)!;
        });
    }

    public ModelInfo GetModel(string name) => Read(connection => ReadModel(connection, null, name) ?? throw ModelNotFound(name));

    public VersionInfo CreateVersion(Actor actor, NewVersion request)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckModelName(request.Model);
        RunId.Check("run_id", request.RunId);
        var path = ArtifactPath.Normalize("artifact_path", request.ArtifactPath);
        var inputSchema = CheckJson("input_schema", request.InputSchema);
        var outputSchema = CheckJson("output_schema", request.OutputSchema);
        Validate.Text("description", request.Description, Limits.MaxDescriptionLength);
        return Audited(actor, "create_version", request.Model, 0, "", (connection, tx) =>
        {
            RequireRole(actor, Role.Writer, "create a model version");
            RequireModel(connection, tx, request.Model);
            RequireRun(connection, tx, request.RunId, "run_id");
            var artifact = ReadArtifact(connection, tx, request.RunId, path)
                ?? throw new MetricStoreException(ErrorCode.NotFound, $"run '{request.RunId}' has no artifact at path '{path}'; upload it first");
            long version;
            using (var next = Command(connection, tx, "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model = $m"))
            {
                next.Parameters.AddWithValue("$m", request.Model);
                version = Convert.ToInt64(next.ExecuteScalar(), CultureInfo.InvariantCulture);
            }

            using (var insert = Command(
                connection,
                tx,
                """
                INSERT INTO model_versions (model, version, run_id, artifact_path, artifact_sha256, artifact_size, input_schema, output_schema, description, created_by, created_ms, stage)
                VALUES ($m, $v, $r, $p, $s, $n, $in, $out, $d, $a, $t, 0)
                """))
            {
                insert.Parameters.AddWithValue("$m", request.Model);
                insert.Parameters.AddWithValue("$v", version);
                insert.Parameters.AddWithValue("$r", request.RunId);
                insert.Parameters.AddWithValue("$p", artifact.Path);
                insert.Parameters.AddWithValue("$s", artifact.Sha256);
                insert.Parameters.AddWithValue("$n", artifact.Size);
                insert.Parameters.AddWithValue("$in", inputSchema);
                insert.Parameters.AddWithValue("$out", outputSchema);
                insert.Parameters.AddWithValue("$d", request.Description ?? "");
                insert.Parameters.AddWithValue("$a", actor.Name);
                insert.Parameters.AddWithValue("$t", NowMs());
                insert.ExecuteNonQuery();
            }

            // Snapshots: the run's params and the last value of each metric, as they are now.
            using (var snapshot = Command(connection, tx, "INSERT INTO version_params (model, version, key, value) SELECT $m, $v, key, value FROM params WHERE run_id = $r"))
            {
                snapshot.Parameters.AddWithValue("$m", request.Model);
                snapshot.Parameters.AddWithValue("$v", version);
                snapshot.Parameters.AddWithValue("$r", request.RunId);
                snapshot.ExecuteNonQuery();
            }

            using (var snapshot = Command(connection, tx, "INSERT INTO version_metrics (model, version, metric, last) SELECT $m, $v, metric, last FROM run_metrics WHERE run_id = $r"))
            {
                snapshot.Parameters.AddWithValue("$m", request.Model);
                snapshot.Parameters.AddWithValue("$v", version);
                snapshot.Parameters.AddWithValue("$r", request.RunId);
                snapshot.ExecuteNonQuery();
            }

            AppendAudit(connection, tx, actor, "create_version", request.Model, version, "", artifact.Sha256, $"run {request.RunId} artifact {artifact.Path}", allowed: true);
            Enqueue(connection, tx, request.Model, "version.created", actor, version, "", "", null);
            return ReadVersion(connection, tx, request.Model, version)!;
        });
    }

    public VersionInfo GetVersion(string name, long version) =>
        Read(connection => ReadVersion(connection, null, name, version) ?? throw VersionNotFound(name, version));

    /// <summary>Every version of a model, newest first.</summary>
    public IReadOnlyList<VersionInfo> ListVersions(string name)
    {
        CheckModelName(name);
        return Read(connection =>
        {
            _ = ReadModel(connection, null, name) ?? throw ModelNotFound(name);
            using var select = Command(connection, null, "SELECT version FROM model_versions WHERE model = $m ORDER BY version DESC");
            select.Parameters.AddWithValue("$m", name);
            var numbers = new List<long>();
            using (var reader = select.ExecuteReader())
            {
                while (reader.Read())
                {
                    numbers.Add(reader.GetInt64(0));
                }
            }

            return numbers.Select(v => ReadVersion(connection, null, name, v)!).ToList();
        });
    }

    /// <summary>The transition requests of a model, newest first; only those in <paramref name="state"/> when given.</summary>
    public IReadOnlyList<TransitionInfo> ListRequests(string name, RequestState? state = null)
    {
        CheckModelName(name);
        return Read(connection =>
        {
            _ = ReadModel(connection, null, name) ?? throw ModelNotFound(name);
            using var select = Command(connection, null, "SELECT id FROM transition_requests WHERE model = $m" + (state is null ? "" : " AND state = $s") + " ORDER BY id DESC");
            select.Parameters.AddWithValue("$m", name);
            select.Parameters.AddWithValue("$s", (int)(state ?? 0));
            var ids = new List<long>();
            using (var reader = select.ExecuteReader())
            {
                while (reader.Read())
                {
                    ids.Add(reader.GetInt64(0));
                }
            }

            return ids.Select(id => ReadRequest(connection, null, id)!).ToList();
        });
    }

    // ---- stages ----

    /// <summary>
    /// Asks to move a version to a stage. Production needs an approval by an approver who is not
    /// the requester, so that request stays pending; the other moves are applied at once (the
    /// request is recorded as approved by its requester). Moves outside the allowed ones are
    /// FailedPrecondition with the reason.
    /// </summary>
    public TransitionInfo RequestTransition(Actor actor, string name, long version, Stage to, string? comment, bool archiveExisting = true)
    {
        CheckModelName(name);
        Validate.Text("comment", comment, MaxCommentLength);
        if (!Enum.IsDefined(to))
        {
            MetricStoreException.InvalidArgument($"stage {(int)to} is not None, Staging, Production or Archived");
        }

        return Audited(actor, "request", name, version, comment ?? "", (connection, tx) =>
        {
            RequireRole(actor, Role.Writer, "request a stage transition");
            var current = ReadVersion(connection, tx, name, version) ?? throw VersionNotFound(name, version);
            CheckMove(current, to);
            using (var pending = Command(connection, tx, "SELECT id FROM transition_requests WHERE model = $m AND version = $v AND to_stage = $to AND state = 1"))
            {
                pending.Parameters.AddWithValue("$m", name);
                pending.Parameters.AddWithValue("$v", version);
                pending.Parameters.AddWithValue("$to", (int)to);
                if (pending.ExecuteScalar() is long existing)
                {
                    MetricStoreException.Throw(ErrorCode.AlreadyExists, $"request {existing} to move {name}/{version} to {to} is already pending");
                }
            }

            var now = NowMs();
            var needsApproval = to == Stage.Production;
            long id;
            using (var insert = Command(
                connection,
                tx,
                """
                INSERT INTO transition_requests (model, version, from_stage, to_stage, state, requested_by, decided_by, request_comment, decision_comment, created_ms, decided_ms, archive_existing)
                VALUES ($m, $v, $from, $to, $state, $a, $decider, $c, $dc, $t, $dt, $ae) RETURNING id
                """))
            {
                insert.Parameters.AddWithValue("$m", name);
                insert.Parameters.AddWithValue("$v", version);
                insert.Parameters.AddWithValue("$from", (int)current.Stage);
                insert.Parameters.AddWithValue("$to", (int)to);
                insert.Parameters.AddWithValue("$state", (int)(needsApproval ? RequestState.Pending : RequestState.Approved));
                insert.Parameters.AddWithValue("$a", actor.Name);
                insert.Parameters.AddWithValue("$decider", needsApproval ? "" : actor.Name);
                insert.Parameters.AddWithValue("$c", comment ?? "");
                insert.Parameters.AddWithValue("$dc", needsApproval ? "" : $"applied at once: only moves to Production need an approval");
                insert.Parameters.AddWithValue("$t", now);
                insert.Parameters.AddWithValue("$dt", needsApproval ? 0 : now);
                insert.Parameters.AddWithValue("$ae", archiveExisting ? 1 : 0);
                id = (long)insert.ExecuteScalar()!;
            }

            AppendAudit(connection, tx, actor, "request", name, version, current.Stage.ToString(), to.ToString(), comment ?? "", allowed: true);
            Enqueue(connection, tx, name, "request.created", actor, version, current.Stage.ToString(), to.ToString(), id);
            if (!needsApproval)
            {
                MoveStage(connection, tx, actor, name, version, current.Stage, to, comment ?? "");
            }

            return ReadRequest(connection, tx, id)!;
        });
    }

    /// <summary>
    /// Approves or rejects a pending request. Only an approver who is not the requester may
    /// approve; a request whose version moved since it was made is cancelled, and a new request
    /// is needed. Approving a move to Production archives the version that was there (unless the
    /// request said otherwise) and cancels the other pending requests to Production of the model.
    /// </summary>
    public TransitionInfo DecideRequest(Actor actor, long requestId, bool approve, string? comment)
    {
        Validate.Text("comment", comment, MaxCommentLength);
        var action = approve ? "approve" : "reject";
        var target = Read(connection => ReadRequest(connection, null, requestId)) ?? throw new MetricStoreException(ErrorCode.NotFound, $"request {requestId} does not exist");
        return Audited(actor, action, target.Model, target.Version, comment ?? "", (connection, tx) =>
        {
            RequireRole(actor, Role.Approver, $"{action} a request");
            var request = ReadRequest(connection, tx, requestId)!;
            if (request.State != RequestState.Pending)
            {
                MetricStoreException.Throw(ErrorCode.FailedPrecondition, $"request {requestId} is {request.State.ToString().ToLowerInvariant()}, not pending{(request.State == RequestState.Cancelled ? $" ({request.DecisionComment})" : "")}; make a new request");
            }

            if (approve && request.RequestedBy == actor.Name)
            {
                MetricStoreException.Throw(ErrorCode.PermissionDenied, $"{actor.Name} requested {requestId} and cannot approve it: an approver other than the requester must");
            }

            // Every move cancels the pending requests made from the stage the version left (MoveStage),
            // so a pending request's version is still where it was when the request was made.
            var version = ReadVersion(connection, tx, request.Model, request.Version)!;
            if (version.Stage != request.From)
            {
                throw new InvalidOperationException($"request {requestId} is pending but {request.Model}/{request.Version} moved from {request.From} to {version.Stage}");
            }

            var now = NowMs();
            SetRequestState(connection, tx, requestId, approve ? RequestState.Approved : RequestState.Rejected, actor.Name, comment ?? "", now);
            AppendAudit(connection, tx, actor, action, request.Model, request.Version, request.From.ToString(), request.To.ToString(), comment ?? "", allowed: true);
            Enqueue(connection, tx, request.Model, approve ? "request.approved" : "request.rejected", actor, request.Version, request.From.ToString(), request.To.ToString(), requestId);
            if (approve)
            {
                if (request.To == Stage.Production && request.ArchiveExisting)
                {
                    foreach (var other in VersionsInStage(connection, tx, request.Model, Stage.Production).Where(v => v != request.Version))
                    {
                        MoveStage(connection, tx, actor, request.Model, other, Stage.Production, Stage.Archived, $"archived by the approval of request {requestId}");
                    }

                    CancelPending(connection, tx, request.Model, Stage.Production, $"superseded: {request.Model}/{request.Version} reached Production by request {requestId}", now);
                }

                MoveStage(connection, tx, actor, request.Model, request.Version, version.Stage, request.To, comment ?? "");
            }

            return ReadRequest(connection, tx, requestId)!;
        });
    }

    public TransitionInfo GetRequest(long requestId) =>
        Read(connection => ReadRequest(connection, null, requestId)) ?? throw new MetricStoreException(ErrorCode.NotFound, $"request {requestId} does not exist");

    // ---- aliases and resolution ----

    /// <summary>Points an alias at a version (moving it from another). Protected aliases need an approver.</summary>
    public VersionInfo SetAlias(Actor actor, string name, string alias, long version, string? comment)
    {
        CheckModelName(name);
        CheckAlias(alias);
        Validate.Text("comment", comment, MaxCommentLength);
        return Audited(actor, "set_alias", name, version, comment ?? "", (connection, tx) =>
        {
            RequireRole(actor, Role.Writer, "set an alias");
            var model = ReadModel(connection, tx, name) ?? throw ModelNotFound(name);
            if (ProtectedAliases(model).Contains(alias) && actor.Role < Role.Approver)
            {
                MetricStoreException.Throw(ErrorCode.PermissionDenied, $"alias '{alias}' of model '{name}' is protected: only an approver can move it ({actor.Name} is a {actor.Role.ToString().ToLowerInvariant()})");
            }

            _ = ReadVersion(connection, tx, name, version) ?? throw VersionNotFound(name, version);
            var previous = model.Aliases.TryGetValue(alias, out var was) ? was.ToString(CultureInfo.InvariantCulture) : "";
            using (var upsert = Command(connection, tx, "INSERT INTO model_aliases (model, alias, version) VALUES ($m, $a, $v) ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version"))
            {
                upsert.Parameters.AddWithValue("$m", name);
                upsert.Parameters.AddWithValue("$a", alias);
                upsert.Parameters.AddWithValue("$v", version);
                upsert.ExecuteNonQuery();
            }

            AppendAudit(connection, tx, actor, "set_alias", name, version, previous, version.ToString(CultureInfo.InvariantCulture), $"{alias}{(comment is { Length: > 0 } ? ": " + comment : "")}", allowed: true);
            Enqueue(connection, tx, name, "alias.changed", actor, version, previous, version.ToString(CultureInfo.InvariantCulture), null, alias);
            return ReadVersion(connection, tx, name, version)!;
        });
    }

    /// <summary>
    /// The deployment gate: "name@Production" or "name@Staging" (the highest version in that
    /// stage) or "name@alias". Nothing else resolves: not a version number, not None or Archived.
    /// </summary>
    public VersionInfo Resolve(string reference)
    {
        var at = reference?.LastIndexOf('@') ?? -1;
        if (reference is null || at <= 0 || at == reference.Length - 1)
        {
            MetricStoreException.InvalidArgument($"reference {Validate.Quote(reference)} is not NAME@STAGE or NAME@ALIAS (e.g. 'fraud-model@Production', 'fraud-model@champion')");
        }

        var name = reference[..at];
        var target = reference[(at + 1)..];
        CheckModelName(name);
        return Read(connection =>
        {
            _ = ReadModel(connection, null, name) ?? throw ModelNotFound(name);
            if (Enum.TryParse<Stage>(target, ignoreCase: true, out var stage) && !target.All(char.IsAsciiDigit))
            {
                if (stage is not (Stage.Production or Stage.Staging))
                {
                    MetricStoreException.InvalidArgument($"'{target}' does not resolve: only Staging, Production or an alias name a deployable version");
                }

                var versions = VersionsInStage(connection, null, name, stage);
                return versions.Count == 0
                    ? throw new MetricStoreException(ErrorCode.NotFound, $"model '{name}' has no version in {stage}")
                    : ReadVersion(connection, null, name, versions.Max())!;
            }

            using var select = Command(connection, null, "SELECT version FROM model_aliases WHERE model = $m AND alias = $a");
            select.Parameters.AddWithValue("$m", name);
            select.Parameters.AddWithValue("$a", target);
            return select.ExecuteScalar() is long version
                ? ReadVersion(connection, null, name, version)!
                : throw new MetricStoreException(ErrorCode.NotFound, $"model '{name}' has no alias '{target}' (and it is not Staging or Production)");
        });
    }

    // ---- audit ----

    /// <summary>The audit records of a model (of one version when <paramref name="version"/> &gt; 0), oldest first.</summary>
    public IReadOnlyList<AuditEntry> ListAudit(string name, long version = 0)
    {
        CheckModelName(name);
        return Read(connection =>
        {
            using var select = Command(connection, null, "SELECT id, time_ms, actor, action, model, version, from_value, to_value, comment, allowed FROM audit WHERE model = $m" + (version > 0 ? " AND version = $v" : "") + " ORDER BY id");
            select.Parameters.AddWithValue("$m", name);
            select.Parameters.AddWithValue("$v", version);
            using var reader = select.ExecuteReader();
            var entries = new List<AuditEntry>();
            while (reader.Read())
            {
                entries.Add(new AuditEntry(reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetInt64(5), reader.GetString(6), reader.GetString(7), reader.GetString(8), reader.GetInt64(9) != 0));
            }

            return entries;
        });
    }

    // ---- helpers ----

    /// <summary>
    /// Runs a registry change; when it is refused (MetricStoreException), appends an audit record
    /// with allowed = false and the reason in a transaction of its own, then rethrows.
    /// </summary>
    private T Audited<T>(Actor actor, string action, string model, long version, string comment, Func<SqliteConnection, SqliteTransaction, T> change)
    {
        T result;
        try
        {
            result = Write(change);
        }
        catch (MetricStoreException e)
        {
            Write((connection, tx) =>
            {
                AppendAudit(connection, tx, actor, action, model, version, "", "", string.IsNullOrEmpty(comment) ? e.Message : $"{comment} | refused: {e.Message}", allowed: false);
                return 0;
            });
            throw;
        }

        DeliveriesQueued?.Invoke();
        return result;
    }

    private static void RequireRole(Actor actor, Role role, string what)
    {
        if (actor.Role < role)
        {
            MetricStoreException.Throw(ErrorCode.PermissionDenied, $"{actor.Name} is a {actor.Role.ToString().ToLowerInvariant()}; to {what} takes the role {role.ToString().ToLowerInvariant()} or higher");
        }
    }

    private static void CheckMove(VersionInfo version, Stage to)
    {
        var allowed = (version.Stage, to) switch
        {
            (Stage.None, Stage.Staging or Stage.Archived) => true,
            (Stage.Staging, Stage.Production or Stage.Archived or Stage.None) => true,
            (Stage.Production, Stage.Archived or Stage.Staging) => true,
            (Stage.Archived, Stage.Staging) => true,
            _ => false,
        };
        if (!allowed)
        {
            var reason = (version.Stage, to) switch
            {
                var (from, target) when from == target => $"it is already in {target}",
                (Stage.Archived, _) => "an archived version can only go back to Staging (then a new request for Production)",
                (Stage.None, Stage.Production) => "a version reaches Production from Staging: request Staging first",
                _ => $"{version.Stage} → {to} is not a move the registry makes",
            };
            MetricStoreException.Throw(ErrorCode.FailedPrecondition, $"cannot move {version.Model}/{version.Version} from {version.Stage} to {to}: {reason}");
        }
    }

    private void MoveStage(SqliteConnection connection, SqliteTransaction tx, Actor actor, string model, long version, Stage from, Stage to, string comment)
    {
        using (var update = Command(connection, tx, "UPDATE model_versions SET stage = $s WHERE model = $m AND version = $v"))
        {
            update.Parameters.AddWithValue("$s", (int)to);
            update.Parameters.AddWithValue("$m", model);
            update.Parameters.AddWithValue("$v", version);
            update.ExecuteNonQuery();
        }

        // Requests made from the stage the version just left can no longer apply.
        using (var stale = Command(connection, tx, "UPDATE transition_requests SET state = 4, decision_comment = $c, decided_ms = $t WHERE model = $m AND version = $v AND state = 1 AND from_stage != $s"))
        {
            stale.Parameters.AddWithValue("$c", $"cancelled: the version moved to {to}");
            stale.Parameters.AddWithValue("$t", NowMs());
            stale.Parameters.AddWithValue("$m", model);
            stale.Parameters.AddWithValue("$v", version);
            stale.Parameters.AddWithValue("$s", (int)to);
            stale.ExecuteNonQuery();
        }

        AppendAudit(connection, tx, actor, "transition", model, version, from.ToString(), to.ToString(), comment, allowed: true);
        Enqueue(connection, tx, model, "stage.changed", actor, version, from.ToString(), to.ToString(), null);
    }

    private static void CancelPending(SqliteConnection connection, SqliteTransaction tx, string model, Stage to, string reason, long now)
    {
        using var cancel = Command(connection, tx, "UPDATE transition_requests SET state = 4, decision_comment = $c, decided_ms = $t WHERE model = $m AND to_stage = $to AND state = 1");
        cancel.Parameters.AddWithValue("$c", reason);
        cancel.Parameters.AddWithValue("$t", now);
        cancel.Parameters.AddWithValue("$m", model);
        cancel.Parameters.AddWithValue("$to", (int)to);
        cancel.ExecuteNonQuery();
    }

    private static void SetRequestState(SqliteConnection connection, SqliteTransaction tx, long id, RequestState state, string decider, string comment, long now)
    {
        using var update = Command(connection, tx, "UPDATE transition_requests SET state = $s, decided_by = $d, decision_comment = $c, decided_ms = $t WHERE id = $id");
        update.Parameters.AddWithValue("$s", (int)state);
        update.Parameters.AddWithValue("$d", decider);
        update.Parameters.AddWithValue("$c", comment);
        update.Parameters.AddWithValue("$t", now);
        update.Parameters.AddWithValue("$id", id);
        update.ExecuteNonQuery();
    }

    private static List<long> VersionsInStage(SqliteConnection connection, SqliteTransaction? tx, string model, Stage stage)
    {
        using var select = Command(connection, tx, "SELECT version FROM model_versions WHERE model = $m AND stage = $s ORDER BY version");
        select.Parameters.AddWithValue("$m", model);
        select.Parameters.AddWithValue("$s", (int)stage);
        using var reader = select.ExecuteReader();
        var versions = new List<long>();
        while (reader.Read())
        {
            versions.Add(reader.GetInt64(0));
        }

        return versions;
    }

    private void AppendAudit(SqliteConnection connection, SqliteTransaction tx, Actor actor, string action, string model, long version, string from, string to, string comment, bool allowed)
    {
        using var insert = Command(connection, tx, "INSERT INTO audit (time_ms, actor, action, model, version, from_value, to_value, comment, allowed) VALUES ($t, $a, $x, $m, $v, $f, $to, $c, $ok)");
        insert.Parameters.AddWithValue("$t", NowMs());
        insert.Parameters.AddWithValue("$a", actor.Name);
        insert.Parameters.AddWithValue("$x", action);
        insert.Parameters.AddWithValue("$m", model ?? "");
        insert.Parameters.AddWithValue("$v", version);
        insert.Parameters.AddWithValue("$f", from);
        insert.Parameters.AddWithValue("$to", to);
        insert.Parameters.AddWithValue("$c", comment.Length <= MaxCommentLength * 2 ? comment : comment[..(MaxCommentLength * 2)]);
        insert.Parameters.AddWithValue("$ok", allowed ? 1 : 0);
        insert.ExecuteNonQuery();
    }

    private static void RequireModel(SqliteConnection connection, SqliteTransaction tx, string name)
    {
        using var exists = Command(connection, tx, "SELECT 1 FROM models WHERE name = $n");
        exists.Parameters.AddWithValue("$n", name);
        if (exists.ExecuteScalar() is null)
        {
            throw ModelNotFound(name);
        }
    }

    private static ModelInfo? ReadModel(SqliteConnection connection, SqliteTransaction? tx, string name)
    {
        string description, createdBy;
        long created;
        using (var select = Command(connection, tx, "SELECT description, created_ms, created_by FROM models WHERE name = $n"))
        {
            select.Parameters.AddWithValue("$n", name);
            using var reader = select.ExecuteReader();
            if (!reader.Read())
            {
                return null;
            }

            (description, created, createdBy) = (reader.GetString(0), reader.GetInt64(1), reader.GetString(2));
        }

        var tags = ReadDictionary(connection, tx, "SELECT key, value FROM model_tags WHERE model = $n", r => r.GetString(1), ("$n", name));
        var aliases = ReadDictionary(connection, tx, "SELECT alias, version FROM model_aliases WHERE model = $n", r => r.GetInt64(1), ("$n", name));

        long latest;
        using (var select = Command(connection, tx, "SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE model = $n"))
        {
            select.Parameters.AddWithValue("$n", name);
            latest = Convert.ToInt64(select.ExecuteScalar(), CultureInfo.InvariantCulture);
        }

        return new ModelInfo(name, description, tags, created, createdBy, aliases, latest);
    }

    private static VersionInfo? ReadVersion(SqliteConnection connection, SqliteTransaction? tx, string model, long version)
    {
        VersionInfo info;
        using (var select = Command(
            connection,
            tx,
            "SELECT run_id, artifact_path, artifact_sha256, artifact_size, input_schema, output_schema, description, created_by, created_ms, stage FROM model_versions WHERE model = $m AND version = $v"))
        {
            select.Parameters.AddWithValue("$m", model);
            select.Parameters.AddWithValue("$v", version);
            using var reader = select.ExecuteReader();
            if (!reader.Read())
            {
                return null;
            }

            info = new VersionInfo(
                model, version, reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3), new Dictionary<string, string>(), new Dictionary<string, double>(),
                reader.GetString(4), reader.GetString(5), reader.GetString(6), reader.GetString(7), reader.GetInt64(8), (Stage)reader.GetInt32(9), []);
        }

        var parameters = ReadDictionary(connection, tx, "SELECT key, value FROM version_params WHERE model = $m AND version = $v", r => r.GetString(1), ("$m", model), ("$v", version));
        var metrics = ReadDictionary(connection, tx, "SELECT metric, last FROM version_metrics WHERE model = $m AND version = $v", r => r.IsDBNull(1) ? double.NaN : r.GetDouble(1), ("$m", model), ("$v", version));

        var aliases = new List<string>();
        using (var select = Command(connection, tx, "SELECT alias FROM model_aliases WHERE model = $m AND version = $v ORDER BY alias"))
        {
            select.Parameters.AddWithValue("$m", model);
            select.Parameters.AddWithValue("$v", version);
            using var reader = select.ExecuteReader();
            while (reader.Read())
            {
                aliases.Add(reader.GetString(0));
            }
        }

        return info with { Params = parameters, Metrics = metrics, Aliases = aliases };
    }

    private static TransitionInfo? ReadRequest(SqliteConnection connection, SqliteTransaction? tx, long id)
    {
        using var select = Command(
            connection,
            tx,
            "SELECT id, model, version, from_stage, to_stage, state, requested_by, decided_by, request_comment, decision_comment, created_ms, decided_ms, archive_existing FROM transition_requests WHERE id = $id");
        select.Parameters.AddWithValue("$id", id);
        using var reader = select.ExecuteReader();
        return reader.Read()
            ? new TransitionInfo(
                reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), (Stage)reader.GetInt32(3), (Stage)reader.GetInt32(4), (RequestState)reader.GetInt32(5),
                reader.GetString(6), reader.GetString(7), reader.GetString(8), reader.GetString(9), reader.GetInt64(10), reader.GetInt64(11), reader.GetInt64(12) != 0)
            : null;
    }

    private static HashSet<string> ProtectedAliases(ModelInfo model) =>
        model.Tags.TryGetValue(ProtectedAliasesTag, out var list)
            ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal)
            : s_defaultProtectedAliases.ToHashSet(StringComparer.Ordinal);

    private static void CheckModelName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxModelNameLength || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            MetricStoreException.InvalidArgument($"model name {Validate.Quote(name)} must be 1..{MaxModelNameLength} characters of A-Z, a-z, 0-9, '.', '_' and '-'");
        }
    }

    private static void CheckAlias(string? alias)
    {
        if (string.IsNullOrEmpty(alias) || alias.Length > MaxAliasLength || !alias.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-'))
        {
            MetricStoreException.InvalidArgument($"alias {Validate.Quote(alias)} must be 1..{MaxAliasLength} characters of a-z, 0-9, '_' and '-'");
        }

        if (Enum.TryParse<Stage>(alias, ignoreCase: true, out _) && !alias.All(char.IsAsciiDigit))
        {
            MetricStoreException.InvalidArgument($"alias '{alias}' is a stage name; pick another (e.g. 'champion')");
        }

        if (alias.All(char.IsAsciiDigit))
        {
            MetricStoreException.InvalidArgument($"alias '{alias}' is a number and would read as a version; pick a name");
        }
    }

    private static string CheckJson(string field, string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return "";
        }

        Validate.Text(field, json, MaxSchemaLength);
        try
        {
            using var _ = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            MetricStoreException.InvalidArgument($"{field} is not valid JSON: {e.Message}");
        }

        return json;
    }

    private static MetricStoreException ModelNotFound(string name) => new(ErrorCode.NotFound, $"model '{name}' does not exist");

    private static MetricStoreException VersionNotFound(string name, long version) => new(ErrorCode.NotFound, $"model '{name}' has no version {version}");
}
