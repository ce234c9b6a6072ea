using MetricStore.Core;
using Microsoft.Data.Sqlite;

namespace MetricStore.Tracking;

public sealed partial class TrackingStore
{
    private const string RunColumns =
        "r.id, r.experiment_id, e.name, r.name, r.status, r.start_ms, r.end_ms, r.parent_run_id, r.hypothesis, r.outcome, " +
        "r.git_commit, r.git_branch, r.git_remote, r.git_dirty, r.command_line, r.host, r.os, r.runtime, r.user_name";

    /// <summary>Creates a RUNNING run with its initial params, tags, note and captured source.</summary>
    public Run CreateRun(NewRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var hasId = run.ExperimentId != 0;
        var hasName = !string.IsNullOrEmpty(run.ExperimentName);
        if (hasId == hasName)
        {
            MetricStoreException.InvalidArgument(
                $"give exactly one of experiment_id and experiment_name (got experiment_id {run.ExperimentId} and experiment_name {Validate.Quote(run.ExperimentName)})");
        }

        if (hasName)
        {
            Validate.Name("experiment_name", run.ExperimentName, Limits.MaxNameLength);
        }

        if (run.Name is { Length: > 0 })
        {
            Validate.Name("name", run.Name, Limits.MaxNameLength);
        }

        ValidateEntries("params", run.Params, Limits.MaxParamValueLength);
        ValidateEntries("tags", run.Tags, Limits.MaxTagValueLength);
        var source = run.Source ?? SourceInfo.Empty;
        ValidateSource(source);
        var note = run.Note ?? Note.Empty;
        Validate.Text("note.hypothesis", note.Hypothesis, Limits.MaxNoteLength);
        Validate.Text("note.outcome", note.Outcome, Limits.MaxNoteLength);
        if (!string.IsNullOrEmpty(run.ParentRunId))
        {
            RunId.Check("parent_run_id", run.ParentRunId);
        }

        if (run.StartTimeMs < 0)
        {
            MetricStoreException.InvalidArgument($"start_time_ms {run.StartTimeMs} is negative; give Unix epoch milliseconds, or 0 for the server's clock");
        }

        var id = RunId.New();
        var name = run.Name is { Length: > 0 } ? run.Name : "run-" + id[^8..];
        var start = run.StartTimeMs > 0 ? run.StartTimeMs : NowMs();

        Write((connection, tx) =>
        {
            long experimentId;
            if (hasName)
            {
                experimentId = FindExperimentId(connection, tx, run.ExperimentName!)
                    ?? throw new MetricStoreException(ErrorCode.NotFound, $"experiment '{run.ExperimentName}' does not exist; create it first");
            }
            else
            {
                experimentId = run.ExperimentId;
                using var exists = Command(connection, tx, "SELECT 1 FROM experiments WHERE id = $id");
                exists.Parameters.AddWithValue("$id", experimentId);
                if (exists.ExecuteScalar() is null)
                {
                    MetricStoreException.NotFound($"experiment {experimentId} does not exist");
                }
            }

            if (!string.IsNullOrEmpty(run.ParentRunId))
            {
                RequireRun(connection, tx, run.ParentRunId, "parent_run_id");
            }

            using var insert = Command(connection, tx,
                "INSERT INTO runs (id, experiment_id, name, status, start_ms, parent_run_id, hypothesis, outcome, " +
                "git_commit, git_branch, git_remote, git_dirty, command_line, host, os, runtime, user_name) " +
                "VALUES ($id, $e, $n, $s, $t, $p, $h, $o, $gc, $gb, $gr, $gd, $cl, $host, $os, $rt, $u)");
            insert.Parameters.AddWithValue("$id", id);
            insert.Parameters.AddWithValue("$e", experimentId);
            insert.Parameters.AddWithValue("$n", name);
            insert.Parameters.AddWithValue("$s", (int)RunStatus.Running);
            insert.Parameters.AddWithValue("$t", start);
            insert.Parameters.AddWithValue("$p", string.IsNullOrEmpty(run.ParentRunId) ? DBNull.Value : run.ParentRunId);
            insert.Parameters.AddWithValue("$h", note.Hypothesis);
            insert.Parameters.AddWithValue("$o", note.Outcome);
            insert.Parameters.AddWithValue("$gc", source.GitCommit);
            insert.Parameters.AddWithValue("$gb", source.GitBranch);
            insert.Parameters.AddWithValue("$gr", source.GitRemote);
            insert.Parameters.AddWithValue("$gd", source.GitDirty ? 1 : 0);
            insert.Parameters.AddWithValue("$cl", source.CommandLine);
            insert.Parameters.AddWithValue("$host", source.Host);
            insert.Parameters.AddWithValue("$os", source.Os);
            insert.Parameters.AddWithValue("$rt", source.Runtime);
            insert.Parameters.AddWithValue("$u", source.User);
            insert.ExecuteNonQuery();

            if (run.Params is { Count: > 0 })
            {
                UpsertEntries(connection, tx, "params", "run_id", id, run.Params);
            }

            if (run.Tags is { Count: > 0 })
            {
                UpsertEntries(connection, tx, "run_tags", "run_id", id, run.Tags);
            }

            return 0;
        });

        return GetRun(id);
    }

    public Run GetRun(string runId)
    {
        RunId.Check("run_id", runId);
        return Read(connection => ReadRun(connection, runId))
            ?? throw new MetricStoreException(ErrorCode.NotFound, $"run '{runId}' does not exist");
    }

    /// <summary>True when the run exists (any status). Cheap: one indexed read.</summary>
    public bool RunExists(string runId)
    {
        if (!RunId.IsWellFormed(runId))
        {
            return false;
        }

        return Read(connection =>
        {
            using var exists = Command(connection, null, "SELECT 1 FROM runs WHERE id = $id");
            exists.Parameters.AddWithValue("$id", runId);
            return exists.ExecuteScalar() is not null;
        });
    }

    /// <summary>The runs of an experiment, newest first, a page at a time.</summary>
    public Page<Run> ListRuns(long experimentId, int pageSize = 0, string? pageToken = null)
    {
        var size = Validate.PageSize("page_size", pageSize);
        var after = PageToken.Decode("page_token", pageToken, "runs");
        _ = GetExperiment(experimentId);
        return Read(connection =>
        {
            var ids = new List<string>(size + 1);
            var sql = after is null
                ? "SELECT id FROM runs WHERE experiment_id = $e ORDER BY start_ms DESC, id DESC LIMIT $limit"
                : "SELECT id FROM runs WHERE experiment_id = $e AND (start_ms < $s OR (start_ms = $s AND id < $id)) ORDER BY start_ms DESC, id DESC LIMIT $limit";
            using (var select = Command(connection, null, sql))
            {
                select.Parameters.AddWithValue("$e", experimentId);
                select.Parameters.AddWithValue("$limit", size + 1);
                if (after is { } key)
                {
                    select.Parameters.AddWithValue("$s", key.A);
                    select.Parameters.AddWithValue("$id", key.B);
                }

                using var reader = select.ExecuteReader();
                while (reader.Read())
                {
                    ids.Add(reader.GetString(0));
                }
            }

            return ReadPage(connection, ids, size, (c, id) => ReadRun(c, id)!, last => PageToken.Encode("runs", last.StartTimeMs, last.Id));
        });
    }

    /// <summary>
    /// Ends a RUNNING run. Ending an ended run with the status it has is a no-op (a retried call
    /// succeeds); any other change of an ended run is FailedPrecondition.
    /// </summary>
    public Run EndRun(string runId, RunStatus status, long endTimeMs = 0)
    {
        RunId.Check("run_id", runId);
        if (!status.IsEnded())
        {
            MetricStoreException.InvalidArgument($"status {status.ToWireName()} cannot end a run; use FINISHED, FAILED or KILLED");
        }

        if (endTimeMs < 0)
        {
            MetricStoreException.InvalidArgument($"end_time_ms {endTimeMs} is negative; give Unix epoch milliseconds, or 0 for the server's clock");
        }

        Write((connection, tx) =>
        {
            RunStatus current;
            long start;
            using (var select = Command(connection, tx, "SELECT status, start_ms FROM runs WHERE id = $id"))
            {
                select.Parameters.AddWithValue("$id", runId);
                using var reader = select.ExecuteReader();
                if (!reader.Read())
                {
                    MetricStoreException.NotFound($"run '{runId}' does not exist");
                }

                current = (RunStatus)reader.GetInt32(0);
                start = reader.GetInt64(1);
            }

            if (current == status)
            {
                return 0;
            }

            if (current.IsEnded())
            {
                MetricStoreException.Throw(ErrorCode.FailedPrecondition,
                    $"run '{runId}' has already ended as {current.ToWireName()}; it cannot change to {status.ToWireName()} (an ended run never changes status)");
            }

            var end = endTimeMs > 0 ? endTimeMs : Math.Max(NowMs(), start);
            if (end < start)
            {
                MetricStoreException.InvalidArgument($"end_time_ms {end} is before the run's start_time_ms {start}");
            }

            using var update = Command(connection, tx, "UPDATE runs SET status = $s, end_ms = $t WHERE id = $id");
            update.Parameters.AddWithValue("$s", (int)status);
            update.Parameters.AddWithValue("$t", end);
            update.Parameters.AddWithValue("$id", runId);
            update.ExecuteNonQuery();
            return 0;
        });

        return GetRun(runId);
    }

    /// <summary>
    /// Logs params, all or nothing. A key logged again with the same value is fine; with a
    /// different value it is AlreadyExists naming the key and both values.
    /// </summary>
    public void LogParams(string runId, IReadOnlyDictionary<string, string> parameters)
    {
        RunId.Check("run_id", runId);
        ValidateBatch("params", parameters, Limits.MaxParamValueLength);
        Write((connection, tx) =>
        {
            RequireRun(connection, tx, runId, "run_id");
            using var select = Command(connection, tx, "SELECT value FROM params WHERE run_id = $r AND key = $k");
            select.Parameters.AddWithValue("$r", runId);
            var key = select.Parameters.Add("$k", SqliteType.Text);
            var fresh = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (k, v) in parameters)
            {
                key.Value = k;
                var existing = select.ExecuteScalar() as string;
                if (existing is null)
                {
                    fresh[k] = v ?? "";
                }
                else if (!string.Equals(existing, v ?? "", StringComparison.Ordinal))
                {
                    MetricStoreException.Throw(ErrorCode.AlreadyExists,
                        $"param '{k}' of run '{runId}' is already {Validate.Quote(existing)} and cannot change to {Validate.Quote(v)}: params are immutable (log a tag for values that change)");
                }
            }

            if (fresh.Count > 0)
            {
                UpsertEntries(connection, tx, "params", "run_id", runId, fresh);
            }

            return 0;
        });
    }

    /// <summary>Creates or overwrites tags of a run, all or nothing.</summary>
    public void SetTags(string runId, IReadOnlyDictionary<string, string> tags)
    {
        RunId.Check("run_id", runId);
        ValidateBatch("tags", tags, Limits.MaxTagValueLength);
        Write((connection, tx) =>
        {
            RequireRun(connection, tx, runId, "run_id");
            UpsertEntries(connection, tx, "run_tags", "run_id", runId, tags);
            return 0;
        });
    }

    /// <summary>Deletes a tag of a run; NotFound when the run or the tag does not exist.</summary>
    public void DeleteTag(string runId, string key)
    {
        RunId.Check("run_id", runId);
        Validate.Name("key", key, Limits.MaxKeyLength);
        Write((connection, tx) =>
        {
            RequireRun(connection, tx, runId, "run_id");
            using var delete = Command(connection, tx, "DELETE FROM run_tags WHERE run_id = $r AND key = $k");
            delete.Parameters.AddWithValue("$r", runId);
            delete.Parameters.AddWithValue("$k", key);
            if (delete.ExecuteNonQuery() == 0)
            {
                MetricStoreException.NotFound($"run '{runId}' has no tag '{key}'");
            }

            return 0;
        });
    }

    /// <summary>Replaces the parts of the run's note that are given (non-null); returns the note as stored.</summary>
    public Note SetNote(string runId, string? hypothesis, string? outcome)
    {
        RunId.Check("run_id", runId);
        Validate.Text("hypothesis", hypothesis, Limits.MaxNoteLength);
        Validate.Text("outcome", outcome, Limits.MaxNoteLength);
        Write((connection, tx) =>
        {
            RequireRun(connection, tx, runId, "run_id");
            using var update = Command(connection, tx,
                "UPDATE runs SET hypothesis = COALESCE($h, hypothesis), outcome = COALESCE($o, outcome) WHERE id = $id");
            update.Parameters.AddWithValue("$h", (object?)hypothesis ?? DBNull.Value);
            update.Parameters.AddWithValue("$o", (object?)outcome ?? DBNull.Value);
            update.Parameters.AddWithValue("$id", runId);
            update.ExecuteNonQuery();
            return 0;
        });
        return GetRun(runId).Note;
    }

    private static void ValidateSource(SourceInfo source)
    {
        Validate.Text("source.git_commit", source.GitCommit, Limits.MaxSourceFieldLength);
        Validate.Text("source.git_branch", source.GitBranch, Limits.MaxSourceFieldLength);
        Validate.Text("source.git_remote", source.GitRemote, Limits.MaxSourceFieldLength);
        Validate.Text("source.command_line", source.CommandLine, Limits.MaxCommandLineLength);
        Validate.Text("source.host", source.Host, Limits.MaxSourceFieldLength);
        Validate.Text("source.os", source.Os, Limits.MaxSourceFieldLength);
        Validate.Text("source.runtime", source.Runtime, Limits.MaxSourceFieldLength);
        Validate.Text("source.user", source.User, Limits.MaxSourceFieldLength);
    }

    private static void RequireRun(SqliteConnection connection, SqliteTransaction? tx, string runId, string field)
    {
        using var exists = Command(connection, tx, "SELECT 1 FROM runs WHERE id = $id");
        exists.Parameters.AddWithValue("$id", runId);
        if (exists.ExecuteScalar() is null)
        {
            MetricStoreException.NotFound($"{field} '{runId}' names a run that does not exist");
        }
    }

    private static Run? ReadRun(SqliteConnection connection, string runId)
    {
        Run run;
        using (var select = Command(connection, null, $"SELECT {RunColumns} FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.id = $id"))
        {
            select.Parameters.AddWithValue("$id", runId);
            using var reader = select.ExecuteReader();
            if (!reader.Read())
            {
                return null;
            }

            var source = new SourceInfo
            {
                GitCommit = reader.GetString(10),
                GitBranch = reader.GetString(11),
                GitRemote = reader.GetString(12),
                GitDirty = reader.GetInt64(13) != 0,
                CommandLine = reader.GetString(14),
                Host = reader.GetString(15),
                Os = reader.GetString(16),
                Runtime = reader.GetString(17),
                User = reader.GetString(18),
            };
            run = new Run(
                Id: reader.GetString(0),
                ExperimentId: reader.GetInt64(1),
                ExperimentName: reader.GetString(2),
                Name: reader.GetString(3),
                Status: (RunStatus)reader.GetInt32(4),
                StartTimeMs: reader.GetInt64(5),
                EndTimeMs: reader.IsDBNull(6) ? null : reader.GetInt64(6),
                ParentRunId: reader.IsDBNull(7) ? null : reader.GetString(7),
                Params: new Dictionary<string, string>(),
                Tags: new Dictionary<string, string>(),
                Note: new Note(reader.GetString(8), reader.GetString(9)),
                Source: source);
        }

        return run with
        {
            Params = ReadEntries(connection, "params", "run_id", runId),
            Tags = ReadEntries(connection, "run_tags", "run_id", runId),
        };
    }
}
