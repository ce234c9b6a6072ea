using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using MetricStore.Core;
using MetricStore.Tracking.Search;
using Microsoft.Data.Sqlite;

namespace MetricStore.Tracking;

/// <summary>An ended (or running) run brought in by <see cref="TrackingStore.ImportRuns"/>.</summary>
public sealed record ImportedRun(string Id, string Name, RunStatus Status, long StartTimeMs, long EndTimeMs, IReadOnlyDictionary<string, string> Params, IReadOnlyDictionary<string, string> Tags, IReadOnlyList<RunMetricSummary> Metrics);

/// <summary>The last value and summary of one metric of one run, as run search sees it.</summary>
public sealed record RunMetricSummary(string RunId, string Metric, long Count, double Last, long LastStep, double Min, double Max, double Mean);

public sealed partial class TrackingStore
{
    /// <summary>Longest full-text query, in characters.</summary>
    public const int MaxTextLength = 1000;

    /// <summary>
    /// Runs matching <paramref name="filter"/> (the run search language, docs/search.md) in the
    /// given experiments (none = all), ordered by the order keys then newest first, a page at a
    /// time. Page tokens are offsets bound to the query: a token from another query is refused.
    /// </summary>
    public Page<Run> SearchRuns(string? filter, IReadOnlyList<string> experimentNames, IReadOnlyList<string> orderBy, int pageSize = 0, string? pageToken = null, string? text = null)
    {
        if (text is { Length: > MaxTextLength })
        {
            MetricStoreException.InvalidArgument($"text is {text.Length} characters long; the limit is {MaxTextLength}");
        }

        var fullText = SearchText.FullTextQuery(text);
        ArgumentNullException.ThrowIfNull(experimentNames);
        ArgumentNullException.ThrowIfNull(orderBy);
        var size = Validate.PageSize("page_size", pageSize);
        var tree = SearchParser.ParseFilter("filter", filter);
        var order = SearchParser.ParseOrderBy("order_by", orderBy);
        var (where, orderSql, parameters) = SearchCompiler.Compile(tree, order);
        var fingerprint = Fingerprint(tree, order, [.. experimentNames, "\u001e" + fullText]);
        var offset = 0L;
        if (PageToken.Decode("page_token", pageToken, "search") is { } token)
        {
            if (token.B != fingerprint || token.A < 0)
            {
                MetricStoreException.InvalidArgument("page_token comes from a search with another filter, order or experiments; start again without it");
            }

            offset = token.A;
        }

        return Read(connection =>
        {
            RegisterFunctions(connection);
            var experiments = new List<long>(experimentNames.Count);
            for (var i = 0; i < experimentNames.Count; i++)
            {
                experiments.Add(FindExperimentId(connection, experimentNames[i])
                    ?? throw new MetricStoreException(ErrorCode.NotFound, $"experiment_names[{i}]: experiment {Validate.Quote(experimentNames[i])} does not exist"));
            }

            var scope = experiments.Count == 0 ? "1" : $"r.experiment_id IN ({string.Join(", ", experiments.Select((_, i) => "$e" + i.ToString(CultureInfo.InvariantCulture)))})";
            if (fullText is not null)
            {
                scope += " AND r.rowid IN (SELECT rowid FROM run_notes_fts WHERE run_notes_fts MATCH $text)";
            }
            using var command = Command(connection, null, $"""
                SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id
                WHERE {scope} AND ({where})
                ORDER BY {orderSql}
                LIMIT $limit OFFSET $offset
                """);
            for (var i = 0; i < parameters.Count; i++)
            {
                command.Parameters.AddWithValue("$p" + i.ToString(CultureInfo.InvariantCulture), parameters[i]);
            }

            for (var i = 0; i < experiments.Count; i++)
            {
                command.Parameters.AddWithValue("$e" + i.ToString(CultureInfo.InvariantCulture), experiments[i]);
            }

            if (fullText is not null)
            {
                command.Parameters.AddWithValue("$text", fullText);
            }

            command.Parameters.AddWithValue("$limit", size + 1);
            command.Parameters.AddWithValue("$offset", offset);
            var ids = new List<string>(size + 1);
            using (var reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    ids.Add(reader.GetString(0));
                }
            }

            var more = ids.Count > size;
            var runs = ids.Take(size).Select(id => ReadRun(connection, id)!).ToList();
            return new Page<Run>(runs, more ? PageToken.Encode("search", offset + size, fingerprint) : null);
        });
    }

    /// <summary>
    /// Replaces the metric summaries run search filters on (one transaction). Summaries of runs
    /// that do not exist are skipped. NaN is stored as NULL (SQLite has no NaN).
    /// </summary>
    public void UpsertRunMetrics(IReadOnlyList<RunMetricSummary> summaries)
    {
        ArgumentNullException.ThrowIfNull(summaries);
        if (summaries.Count == 0)
        {
            return;
        }

        Write((connection, tx) =>
        {
            using var command = Command(connection, tx, """
                INSERT INTO run_metrics (run_id, metric, count, last, last_step, min, max, mean)
                SELECT $run, $metric, $count, $last, $step, $min, $max, $mean WHERE EXISTS (SELECT 1 FROM runs WHERE id = $run)
                ON CONFLICT (run_id, metric) DO UPDATE SET count = excluded.count, last = excluded.last,
                    last_step = excluded.last_step, min = excluded.min, max = excluded.max, mean = excluded.mean
                """);
            var run = command.Parameters.Add("$run", SqliteType.Text);
            var metric = command.Parameters.Add("$metric", SqliteType.Text);
            var count = command.Parameters.Add("$count", SqliteType.Integer);
            var last = command.Parameters.Add("$last", SqliteType.Real);
            var step = command.Parameters.Add("$step", SqliteType.Integer);
            var min = command.Parameters.Add("$min", SqliteType.Real);
            var max = command.Parameters.Add("$max", SqliteType.Real);
            var mean = command.Parameters.Add("$mean", SqliteType.Real);
            foreach (var s in summaries)
            {
                run.Value = s.RunId;
                metric.Value = s.Metric;
                count.Value = s.Count;
                last.Value = Real(s.Last);
                step.Value = s.LastStep;
                min.Value = Real(s.Min);
                max.Value = Real(s.Max);
                mean.Value = Real(s.Mean);
                command.ExecuteNonQuery();
            }

            return 0;
        });
    }

    /// <summary>
    /// Imports finished runs in one transaction (the fast path for loading history, e.g. from another
    /// tracker, and for the search benchmark). Names, keys and values are checked as for CreateRun;
    /// nothing is stored if one is refused.
    /// </summary>
    public int ImportRuns(string experimentName, IReadOnlyList<ImportedRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var imported = Write((connection, tx) =>
        {
            var experiment = FindExperimentId(connection, experimentName, tx)
                ?? throw new MetricStoreException(ErrorCode.NotFound, $"experiment {Validate.Quote(experimentName)} does not exist");
            using var insertRun = Command(connection, tx, "INSERT INTO runs (id, experiment_id, name, status, start_ms, end_ms) VALUES ($id, $e, $n, $s, $t, $end)");
            var id = insertRun.Parameters.Add("$id", SqliteType.Text);
            insertRun.Parameters.AddWithValue("$e", experiment);
            var name = insertRun.Parameters.Add("$n", SqliteType.Text);
            var status = insertRun.Parameters.Add("$s", SqliteType.Integer);
            var start = insertRun.Parameters.Add("$t", SqliteType.Integer);
            var end = insertRun.Parameters.Add("$end", SqliteType.Integer);
            using var insertParam = Command(connection, tx, "INSERT INTO params (run_id, key, value) VALUES ($r, $k, $v)");
            using var insertTag = Command(connection, tx, "INSERT INTO run_tags (run_id, key, value) VALUES ($r, $k, $v)");
            using var insertMetric = Command(connection, tx, "INSERT INTO run_metrics (run_id, metric, count, last, last_step, min, max, mean) VALUES ($r, $m, $c, $l, $ls, $min, $max, $mean)");
            foreach (var run in runs)
            {
                RunId.Check("runs.id", run.Id);
                Validate.Name("runs.name", run.Name, Limits.MaxNameLength);
                id.Value = run.Id;
                name.Value = run.Name;
                status.Value = (int)run.Status;
                start.Value = run.StartTimeMs;
                end.Value = run.Status == RunStatus.Running ? DBNull.Value : run.EndTimeMs;
                insertRun.ExecuteNonQuery();
                foreach (var (command, entries, what, limit) in new[] { (insertParam, run.Params, "param", Limits.MaxParamValueLength), (insertTag, run.Tags, "tag", Limits.MaxTagValueLength) })
                {
                    foreach (var (key, value) in entries)
                    {
                        Validate.Name($"{what} key", key, Limits.MaxKeyLength);
                        if (value.Length > limit)
                        {
                            MetricStoreException.InvalidArgument($"{what} '{key}' of run {run.Id} is {value.Length} characters long; the limit is {limit}");
                        }

                        command.Parameters.Clear();
                        command.Parameters.AddWithValue("$r", run.Id);
                        command.Parameters.AddWithValue("$k", key);
                        command.Parameters.AddWithValue("$v", value);
                        command.ExecuteNonQuery();
                    }
                }

                foreach (var m in run.Metrics)
                {
                    insertMetric.Parameters.Clear();
                    insertMetric.Parameters.AddWithValue("$r", run.Id);
                    insertMetric.Parameters.AddWithValue("$m", m.Metric);
                    insertMetric.Parameters.AddWithValue("$c", m.Count);
                    insertMetric.Parameters.AddWithValue("$l", Real(m.Last));
                    insertMetric.Parameters.AddWithValue("$ls", m.LastStep);
                    insertMetric.Parameters.AddWithValue("$min", Real(m.Min));
                    insertMetric.Parameters.AddWithValue("$max", Real(m.Max));
                    insertMetric.Parameters.AddWithValue("$mean", Real(m.Mean));
                    insertMetric.ExecuteNonQuery();
                }
            }

            return runs.Count;
        });

        return imported;
    }

    private static object Real(double value) => double.IsNaN(value) ? DBNull.Value : value;

    private static string Fingerprint(FilterNode? tree, IReadOnlyList<OrderKey> order, IReadOnlyList<string> experiments)
    {
        var text = $"{tree}\n{string.Join(",", order)}\n{string.Join("\u001f", experiments)}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)).AsSpan(0, 8));
    }

    private static long? FindExperimentId(SqliteConnection connection, string name, SqliteTransaction? tx = null)
    {
        using var command = Command(connection, tx, "SELECT id FROM experiments WHERE name = $name");
        command.Parameters.AddWithValue("$name", name);
        return command.ExecuteScalar() is long id ? id : null;
    }

    /// <summary>ms_like: LIKE with % and _ (backslash escapes), case-sensitive; ms_number: a number or NULL.</summary>
    private static void RegisterFunctions(SqliteConnection connection)
    {
        connection.CreateFunction("ms_like", (string? value, string pattern) => value is null ? (bool?)null : SearchText.Like(value, pattern), isDeterministic: true);
        connection.CreateFunction("ms_number", (string? value) => SearchText.Number(value), isDeterministic: true);
    }
}
