using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using MetricStore.Protocol.V1;

namespace MetricStore.Cli.Commands;

/// <summary>metricstore runs create|end|list|show.</summary>
internal static class RunsCommands
{
    public static Command Create(CliContext context)
    {
        var command = new Command("runs", "Create, end, list and show runs.");
        command.Subcommands.Add(CreateCommand(context));
        command.Subcommands.Add(EndCommand(context));
        command.Subcommands.Add(ListCommand(context));
        command.Subcommands.Add(SearchCommand(context));
        command.Subcommands.Add(CompareCommand(context));
        command.Subcommands.Add(ShowCommand(context));
        return command;
    }

    private static Command CreateCommand(CliContext context)
    {
        var experiment = new Option<string>("--experiment") { Description = "Name of an existing experiment", Required = true };
        var name = new Option<string?>("--name") { Description = "Run name (default: generated)" };
        var parameters = new Option<string[]>("--param") { Description = "KEY=VALUE param; repeat for more", AllowMultipleArgumentsPerToken = false };
        var tags = new Option<string[]>("--tag") { Description = "KEY=VALUE tag; repeat for more", AllowMultipleArgumentsPerToken = false };
        var command = new Command("create", "Create a RUNNING run and print its id.") { experiment, name, parameters, tags };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var request = new CreateRunRequest { ExperimentName = parse.GetValue(experiment)!, Name = parse.GetValue(name) ?? "" };
            foreach (var (k, v) in Output.KeyValues("--param", parse.GetValue(parameters)))
            {
                request.Params[k] = v;
            }

            foreach (var (k, v) in Output.KeyValues("--tag", parse.GetValue(tags)))
            {
                request.Tags[k] = v;
            }

            using var client = context.Connect(parse);
            var run = await client.Tracking.CreateRunAsync(request, cancellationToken: cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJson(context.Output, Output.ToJson(run, JsonValue.Create(run.RunId)));
            }
            else
            {
                // Only the id, so scripts can write RUN=$(metricstore runs create ...).
                await context.Output.WriteLineAsync(run.RunId);
            }

            return 0;
        });
        return command;
    }

    private static Command EndCommand(CliContext context)
    {
        var runId = new Argument<string>("RUN_ID");
        var status = new Option<string>("--status") { Description = "FINISHED, FAILED or KILLED", Required = true };
        status.AcceptOnlyFromAmong("FINISHED", "FAILED", "KILLED", "finished", "failed", "killed");
        var command = new Command("end", "End a RUNNING run.") { runId, status };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var wire = parse.GetValue(status)!.ToUpperInvariant() switch
            {
                "FINISHED" => RunStatus.Finished,
                "FAILED" => RunStatus.Failed,
                _ => RunStatus.Killed,
            };
            using var client = context.Connect(parse);
            var run = await client.EndRunAsync(parse.GetValue(runId)!, wire, cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJson(context.Output, Output.ToJson(run, JsonValue.Create(run.RunId)));
            }
            else
            {
                await context.Output.WriteLineAsync($"run {run.RunId} is {StatusName(run.Status)}");
            }

            return 0;
        });
        return command;
    }

    private static Command ListCommand(CliContext context)
    {
        var experiment = new Option<string>("--experiment") { Description = "Experiment name", Required = true };
        var command = new Command("list", "List the runs of an experiment, newest first.") { experiment };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var runs = await client.ListRunsAsync(parse.GetValue(experiment)!, cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJsonArray(context.Output, runs, r => JsonValue.Create(r.RunId));
                return 0;
            }

            if (runs.Count == 0)
            {
                await context.Output.WriteLineAsync($"experiment '{parse.GetValue(experiment)}' has no runs yet");
                return 0;
            }

            Output.WriteTable(
                context.Output,
                ["RUN_ID", "NAME", "STATUS", "STARTED", "DURATION", "PARAMS"],
                runs.Select(r => new[]
                {
                    r.RunId,
                    r.Name,
                    StatusName(r.Status),
                    Output.Time(r.StartTimeMs),
                    Output.Duration(r.StartTimeMs, r.EndTimeMs),
                    string.Join(' ', r.Params.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}")),
                }));
            return 0;
        });
        return command;
    }

    private static Command SearchCommand(CliContext context)
    {
        var filter = new Argument<string>("filter") { Description = "e.g. \"metrics.val_acc > 0.9 and params.lr = '0.01'\" (docs/search.md); \"\" for every run" };
        var experiments = new Option<string[]>("--experiment") { Description = "Only runs of this experiment (repeatable)", AllowMultipleArgumentsPerToken = false };
        var orderBy = new Option<string[]>("--order-by") { Description = "Order key such as \"metrics.val_acc desc\" (repeatable; then newest first)" };
        var max = new Option<int>("--max") { Description = "Runs to return at most", DefaultValueFactory = _ => 100 };
        var text = new Option<string?>("--text") { Description = "Only runs whose notes contain every word (full text; word* for a prefix)" };
        var command = new Command("search", "Find runs by a filter over attributes, params, tags and metric summaries.") { filter, experiments, orderBy, max, text };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var limit = parse.GetValue(max);
            if (limit < 1)
            {
                throw new UsageException($"--max must be at least 1 (got {limit})");
            }

            using var client = context.Connect(parse);
            var request = new SearchRunsRequest { Filter = parse.GetValue(filter) ?? "", Text = parse.GetValue(text) ?? "" };
            request.ExperimentNames.AddRange(parse.GetValue(experiments) ?? []);
            request.OrderBy.AddRange(parse.GetValue(orderBy) ?? []);
            var runs = new List<Run>();
            do
            {
                request.PageSize = Math.Min(1000, limit - runs.Count);
                var page = await client.Tracking.SearchRunsAsync(request, cancellationToken: cancellationToken);
                runs.AddRange(page.Runs);
                request.PageToken = page.NextPageToken;
            }
            while (request.PageToken.Length > 0 && runs.Count < limit);

            if (context.Json(parse))
            {
                Output.WriteJsonArray(context.Output, runs, r => JsonValue.Create(r.RunId));
                return 0;
            }

            if (runs.Count == 0)
            {
                await context.Output.WriteLineAsync("no run matches");
                return 0;
            }

            Output.WriteTable(
                context.Output,
                ["RUN_ID", "EXPERIMENT", "NAME", "STATUS", "STARTED", "PARAMS"],
                runs.Select(r => new[]
                {
                    r.RunId,
                    r.ExperimentName,
                    r.Name,
                    StatusName(r.Status),
                    Output.Time(r.StartTimeMs),
                    string.Join(' ', r.Params.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}")),
                }));
            return 0;
        });
        return command;
    }

    private static Command CompareCommand(CliContext context)
    {
        var ids = new Argument<string[]>("run-ids") { Description = "Two or more run ids", Arity = new ArgumentArity(2, 100) };
        var all = new Option<bool>("--all-params") { Description = "Show every param, not only those that differ" };
        var command = new Command("compare", "Params that differ and metric summaries (last, min, max) of runs side by side.") { ids, all };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var runIds = parse.GetValue(ids)!;
            using var client = context.Connect(parse);
            var runs = new List<Run>(runIds.Length);
            foreach (var id in runIds)
            {
                runs.Add(await client.GetRunAsync(id, cancellationToken));
            }

            var latest = new LatestValuesRequest();
            latest.RunIds.AddRange(runs.Select(r => r.RunId).Distinct(StringComparer.Ordinal));
            var summaries = (await client.Query.LatestValuesAsync(latest, cancellationToken: cancellationToken)).Summaries;
            var keys = runs.SelectMany(r => r.Params.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            var paramRows = keys
                .Select(k => (Key: k, Values: runs.Select(r => r.Params.TryGetValue(k, out var v) ? v : null).ToList()))
                .Where(p => parse.GetValue(all) || p.Values.Distinct(StringComparer.Ordinal).Count() > 1)
                .ToList();
            static string SeriesName(SeriesSummary s) => s.Key.Labels.Count == 0
                ? s.Key.Metric
                : $"{s.Key.Metric}{{{string.Join(',', s.Key.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}"))}}}";
            var metricNames = summaries.Select(SeriesName).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            SeriesSummary? Find(string runId, string name) => summaries.FirstOrDefault(s => s.Key.RunId == runId && SeriesName(s) == name);

            if (context.Json(parse))
            {
                var paramsJson = new JsonObject();
                foreach (var (key, values) in paramRows)
                {
                    paramsJson[key] = new JsonArray([.. values.Select(v => (JsonNode?)(v is null ? null : JsonValue.Create(v)))]);
                }

                var metricsJson = new JsonObject();
                foreach (var name in metricNames)
                {
                    metricsJson[name] = new JsonArray([.. runs.Select(r => Find(r.RunId, name) is { } s
                        ? (JsonNode?)new JsonObject { ["last"] = Number(s.LastValue), ["last_step"] = s.LastStep, ["min"] = Number(s.Min), ["max"] = Number(s.Max), ["count"] = s.Count }
                        : null)]);
                }

                Output.WriteJson(context.Output, new JsonObject
                {
                    ["runs"] = new JsonArray([.. runs.Select(r => (JsonNode?)JsonValue.Create(r.RunId))]),
                    ["params"] = paramsJson,
                    ["metrics"] = metricsJson,
                });
                return 0;
            }

            var header = new[] { "" }.Concat(runs.Select(r => $"{r.Name} ({r.RunId[^8..]})")).ToArray();
            await context.Output.WriteLineAsync(paramRows.Count == 0 ? "params: all equal" : "params that differ:");
            if (paramRows.Count > 0)
            {
                Output.WriteTable(context.Output, header, paramRows.Select(p => new[] { p.Key }.Concat(p.Values.Select(v => v ?? "-")).ToArray()));
            }

            await context.Output.WriteLineAsync();
            await context.Output.WriteLineAsync(metricNames.Count == 0 ? "metrics: none logged" : "metrics (last  [min .. max]):");
            if (metricNames.Count > 0)
            {
                Output.WriteTable(context.Output, header, metricNames.Select(name => new[] { name }.Concat(runs.Select(r => Find(r.RunId, name) is { } s
                    ? string.Create(CultureInfo.InvariantCulture, $"{s.LastValue:G6}  [{s.Min:G4} .. {s.Max:G4}]")
                    : "-")).ToArray()));
            }

            return 0;
        });
        return command;
    }

    /// <summary>A JSON number, or null for NaN and infinities (JSON has no such numbers).</summary>
    private static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    private static Command ShowCommand(CliContext context)
    {
        var runId = new Argument<string>("RUN_ID");
        var command = new Command("show", "Show a run: status, params, tags, note and source.") { runId };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var run = await client.GetRunAsync(parse.GetValue(runId)!, cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJson(context.Output, Output.ToJson(run, JsonValue.Create(run.RunId)));
                return 0;
            }

            var o = context.Output;
            await o.WriteLineAsync($"run         {run.RunId}");
            await o.WriteLineAsync($"name        {run.Name}");
            await o.WriteLineAsync($"experiment  {run.ExperimentName} (id {run.ExperimentId})");
            await o.WriteLineAsync($"status      {StatusName(run.Status)}");
            await o.WriteLineAsync($"started     {Output.Time(run.StartTimeMs)}");
            await o.WriteLineAsync($"ended       {Output.Time(run.EndTimeMs)}  (duration {Output.Duration(run.StartTimeMs, run.EndTimeMs)})");
            if (run.ParentRunId.Length > 0)
            {
                await o.WriteLineAsync($"parent      {run.ParentRunId}");
            }

            await WriteMap(o, "params", run.Params);
            await WriteMap(o, "tags", run.Tags);
            if (run.Note is { } note && (note.Hypothesis.Length > 0 || note.Outcome.Length > 0))
            {
                await o.WriteLineAsync("note");
                await o.WriteLineAsync($"  hypothesis: {note.Hypothesis}");
                await o.WriteLineAsync($"  outcome:    {note.Outcome}");
            }

            if (run.Source is { } s)
            {
                await o.WriteLineAsync("source");
                var git = s.GitCommit.Length > 0 ? $"{s.GitCommit} ({s.GitBranch}{(s.GitDirty ? ", dirty" : "")})" : "-";
                await o.WriteLineAsync($"  git        {git}");
                await o.WriteLineAsync($"  command    {Or(s.CommandLine)}");
                await o.WriteLineAsync($"  host       {Or(s.Host)}  user {Or(s.User)}");
                await o.WriteLineAsync($"  runtime    {Or(s.Runtime)} on {Or(s.Os)}");
            }

            return 0;
        });
        return command;
    }

    private static async Task WriteMap(TextWriter o, string title, IDictionary<string, string> map)
    {
        await o.WriteLineAsync(map.Count == 0 ? $"{title,-11} (none)" : title);
        foreach (var (k, v) in map.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            await o.WriteLineAsync($"  {k} = {v}");
        }
    }

    private static string Or(string value) => value.Length > 0 ? value : "-";

    internal static string StatusName(RunStatus status) => status switch
    {
        RunStatus.Running => "RUNNING",
        RunStatus.Finished => "FINISHED",
        RunStatus.Failed => "FAILED",
        RunStatus.Killed => "KILLED",
        _ => "UNSPECIFIED",
    };
}
