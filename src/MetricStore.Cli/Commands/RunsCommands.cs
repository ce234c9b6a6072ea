using System.CommandLine;
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
        var command = new Command("search", "Find runs by a filter over attributes, params, tags and metric summaries.") { filter, experiments, orderBy, max };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var limit = parse.GetValue(max);
            if (limit < 1)
            {
                throw new UsageException($"--max must be at least 1 (got {limit})");
            }

            using var client = context.Connect(parse);
            var request = new SearchRunsRequest { Filter = parse.GetValue(filter) ?? "" };
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
