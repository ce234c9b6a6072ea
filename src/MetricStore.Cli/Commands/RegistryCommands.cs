using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Google.Protobuf;
using MetricStore.Protocol.V1;

namespace MetricStore.Cli.Commands;

/// <summary>metricstore registry …: models, versions, stages through requests and approvals, aliases, resolve, pull, lineage, audit, webhooks.</summary>
internal static class RegistryCommands
{
    public static Command Create(CliContext context)
    {
        var command = new Command("registry", "The model registry: versions from runs, approvals, aliases, and the deployment gate.");
        command.Subcommands.Add(CreateModel(context));
        command.Subcommands.Add(CreateVersion(context));
        command.Subcommands.Add(Show(context));
        command.Subcommands.Add(Requests(context));
        command.Subcommands.Add(Request(context));
        command.Subcommands.Add(Decide(context, approve: true));
        command.Subcommands.Add(Decide(context, approve: false));
        command.Subcommands.Add(SetAlias(context));
        command.Subcommands.Add(Resolve(context));
        command.Subcommands.Add(Pull(context));
        command.Subcommands.Add(Lineage(context));
        command.Subcommands.Add(Audit(context));
        command.Subcommands.Add(Webhooks(context));
        return command;
    }

    private static Command CreateModel(CliContext context)
    {
        var name = new Argument<string>("NAME") { Description = "1..256 characters of A-Z a-z 0-9 . _ -" };
        var description = new Option<string?>("--description");
        var tags = new Option<string[]>("--tag") { Description = "KEY=VALUE; 'protected_aliases=a,b' names the aliases only approvers may move (default: champion)", AllowMultipleArgumentsPerToken = false };
        var command = new Command("create-model", "Register a model name.") { name, description, tags };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var request = new CreateModelRequest { Name = parse.GetValue(name)!, Description = parse.GetValue(description) ?? "" };
            request.Tags.Add(Output.KeyValues("--tag", parse.GetValue(tags)));
            using var client = context.Connect(parse);
            var model = await client.Registry.CreateModelAsync(request, cancellationToken: cancellationToken);
            await WriteAsync(context, parse, model, JsonValue.Create(model.Name), $"created model '{model.Name}'");
            return 0;
        });
        return command;
    }

    private static Command CreateVersion(CliContext context)
    {
        var name = new Argument<string>("NAME");
        var run = new Option<string>("--run") { Description = "The source run", Required = true };
        var artifact = new Option<string>("--artifact") { Description = "The run's artifact path holding the model", Required = true };
        var description = new Option<string?>("--description");
        var input = new Option<string?>("--input-schema") { Description = "JSON" };
        var output = new Option<string?>("--output-schema") { Description = "JSON" };
        var command = new Command("create-version", "Create the next immutable version from a run's artifact (params and metric summaries are snapshotted).") { name, run, artifact, description, input, output };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var version = await client.Registry.CreateVersionAsync(
                new CreateVersionRequest
                {
                    Name = parse.GetValue(name)!,
                    RunId = parse.GetValue(run)!,
                    ArtifactPath = parse.GetValue(artifact)!,
                    Description = parse.GetValue(description) ?? "",
                    InputSchema = parse.GetValue(input) ?? "",
                    OutputSchema = parse.GetValue(output) ?? "",
                },
                cancellationToken: cancellationToken);
            await WriteAsync(context, parse, version, JsonValue.Create($"{version.Name}/{version.Version}"), $"created {version.Name}/{version.Version} (sha256 {version.ArtifactSha256})");
            return 0;
        });
        return command;
    }

    private static Command Show(CliContext context)
    {
        var name = new Argument<string>("NAME");
        var command = new Command("show", "A model and its versions, newest first: stage, aliases, source run, sha256.") { name };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var model = await client.Registry.GetModelAsync(new GetModelRequest { Name = parse.GetValue(name)! }, cancellationToken: cancellationToken);
            var versions = await client.Registry.ListVersionsAsync(new ListVersionsRequest { Name = model.Name }, cancellationToken: cancellationToken);
            if (context.Json(parse))
            {
                var node = Output.ToJson(model, JsonValue.Create(model.Name));
                var array = new JsonArray();
                foreach (var v in versions.Versions)
                {
                    array.Add(Output.ToJson(v, JsonValue.Create($"{v.Name}/{v.Version}")));
                }

                node["versions"] = array;
                Output.WriteJson(context.Output, node);
                return 0;
            }

            await context.Output.WriteLineAsync($"{model.Name}: {model.Description} (created by {model.CreatedBy} at {Output.Time(model.CreatedTimeMs)})");
            Output.WriteTable(
                context.Output,
                ["VERSION", "STAGE", "ALIASES", "RUN", "SHA256", "CREATED BY", "CREATED"],
                versions.Versions.Select(v => new[] { v.Version.ToString(CultureInfo.InvariantCulture), StageName(v.Stage), string.Join(",", v.Aliases), v.SourceRunId, v.ArtifactSha256, v.CreatedBy, Output.Time(v.CreatedTimeMs) }),
                maxCell: 200);
            return 0;
        });
        return command;
    }

    private static Command Requests(CliContext context)
    {
        var name = new Argument<string>("NAME");
        var pending = new Option<bool>("--pending") { Description = "Only the requests waiting for a decision" };
        var command = new Command("requests", "A model's transition requests, newest first.") { name, pending };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var list = await client.Registry.ListRequestsAsync(
                new ListRequestsRequest { Name = parse.GetValue(name)!, State = parse.GetValue(pending) ? RequestState.Pending : RequestState.Unspecified },
                cancellationToken: cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJsonArray(context.Output, list.Requests, r => JsonValue.Create(r.RequestId));
            }
            else
            {
                Output.WriteTable(
                    context.Output,
                    ["ID", "VERSION", "FROM", "TO", "STATE", "REQUESTED BY", "DECIDED BY", "COMMENT"],
                    list.Requests.Select(r => new[] { r.RequestId.ToString(CultureInfo.InvariantCulture), r.Version.ToString(CultureInfo.InvariantCulture), StageName(r.FromStage), StageName(r.ToStage), r.State.ToString().ToLowerInvariant(), r.RequestedBy, r.DecidedBy, r.RequestComment }),
                    maxCell: 200);
            }

            return 0;
        });
        return command;
    }

    private static Command Request(CliContext context)
    {
        var target = new Argument<string>("NAME/VERSION");
        var stage = new Option<string>("--stage") { Description = "Staging, Production, Archived or None", Required = true };
        var comment = new Option<string?>("--comment");
        var keep = new Option<bool>("--keep-existing") { Description = "On approval to Production, do not archive the version that is there" };
        var command = new Command("request", "Ask to move a version to a stage. Production needs an approval by another user with the approver role; other moves apply at once.") { target, stage, comment, keep };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var (name, version) = NameVersion(parse.GetValue(target)!);
            using var client = context.Connect(parse);
            var request = await client.Registry.RequestTransitionAsync(
                new RequestTransitionRequest { Name = name, Version = version, Stage = ParseStage(parse.GetValue(stage)!), Comment = parse.GetValue(comment) ?? "", ArchiveExisting = !parse.GetValue(keep) },
                cancellationToken: cancellationToken);
            await WriteAsync(context, parse, request, JsonValue.Create(request.RequestId), Describe(request));
            return 0;
        });
        return command;
    }

    private static Command Decide(CliContext context, bool approve)
    {
        var id = new Argument<long>("REQUEST_ID");
        var comment = new Option<string?>("--comment");
        var command = new Command(approve ? "approve" : "reject", approve ? "Approve a pending request (approvers; not your own)." : "Reject a pending request (approvers).") { id, comment };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var decide = new DecideRequest { RequestId = parse.GetValue(id), Comment = parse.GetValue(comment) ?? "" };
            var request = approve
                ? await client.Registry.ApproveRequestAsync(decide, cancellationToken: cancellationToken)
                : await client.Registry.RejectRequestAsync(decide, cancellationToken: cancellationToken);
            await WriteAsync(context, parse, request, JsonValue.Create(request.RequestId), Describe(request));
            return 0;
        });
        return command;
    }

    private static Command SetAlias(CliContext context)
    {
        var target = new Argument<string>("NAME/VERSION");
        var alias = new Argument<string>("ALIAS");
        var comment = new Option<string?>("--comment");
        var command = new Command("set-alias", "Point an alias at a version (protected aliases: approvers only).") { target, alias, comment };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var (name, version) = NameVersion(parse.GetValue(target)!);
            using var client = context.Connect(parse);
            var result = await client.Registry.SetAliasAsync(new SetAliasRequest { Name = name, Version = version, Alias = parse.GetValue(alias)!, Comment = parse.GetValue(comment) ?? "" }, cancellationToken: cancellationToken);
            await WriteAsync(context, parse, result, JsonValue.Create($"{result.Name}/{result.Version}"), $"{result.Name}@{parse.GetValue(alias)} → version {result.Version}");
            return 0;
        });
        return command;
    }

    private static Command Resolve(CliContext context)
    {
        var reference = new Argument<string>("NAME@STAGE_OR_ALIAS");
        var command = new Command("resolve", "The deployment gate: which version NAME@Production, NAME@Staging or NAME@alias is, with its artifact and sha256.") { reference };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var resolved = await client.Registry.ResolveAsync(new ResolveRequest { Reference = parse.GetValue(reference)! }, cancellationToken: cancellationToken);
            await WriteAsync(
                context,
                parse,
                resolved,
                JsonValue.Create($"{resolved.Version.Name}/{resolved.Version.Version}"),
                $"{parse.GetValue(reference)} = {resolved.Version.Name}/{resolved.Version.Version}\n  artifact  {resolved.ArtifactUri}\n  sha256    {resolved.ArtifactSha256}");
            return 0;
        });
        return command;
    }

    private static Command Pull(CliContext context)
    {
        var reference = new Argument<string>("NAME@STAGE_OR_ALIAS");
        var output = new Option<string>("--out") { Description = "Directory to write the model file into", Required = true };
        var command = new Command("pull", "Resolve and download a model's artifact, verifying its sha256; on a mismatch nothing is left in the directory.") { reference, output };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var (resolved, file) = await client.PullModelAsync(parse.GetValue(reference)!, parse.GetValue(output)!, cancellationToken);
            if (context.Json(parse))
            {
                var node = Output.ToJson(resolved, JsonValue.Create($"{resolved.Version.Name}/{resolved.Version.Version}"));
                node["localFile"] = file;
                Output.WriteJson(context.Output, node);
            }
            else
            {
                await context.Output.WriteLineAsync($"pulled {resolved.Version.Name}/{resolved.Version.Version} to {file} (sha256 {resolved.ArtifactSha256} verified)");
            }

            return 0;
        });
        return command;
    }

    private static Command Lineage(CliContext context)
    {
        var target = new Argument<string>("NAME/VERSION");
        var command = new Command("lineage", "Version → run → params, metric summaries, git commit, environment, artifacts.") { target };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var (name, version) = NameVersion(parse.GetValue(target)!);
            using var client = context.Connect(parse);
            var lineage = await client.Registry.GetLineageAsync(new GetVersionRequest { Name = name, Version = version }, cancellationToken: cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJson(context.Output, Output.ToJson(lineage, JsonValue.Create($"{name}/{version}")));
                return 0;
            }

            var v = lineage.Version;
            var o = context.Output;
            await o.WriteLineAsync($"{v.Name}/{v.Version}  stage {StageName(v.Stage)}  aliases [{string.Join(", ", v.Aliases)}]  by {v.CreatedBy} at {Output.Time(v.CreatedTimeMs)}");
            await o.WriteLineAsync($"  artifact   {v.ArtifactPath}  {v.ArtifactSize.ToString("N0", CultureInfo.InvariantCulture)} bytes  sha256 {v.ArtifactSha256}");
            await o.WriteLineAsync($"  run        {v.SourceRunId}{(lineage.Run is { } r ? $"  '{r.Name}' in {r.ExperimentName}, {r.Status}" : "  (no longer in the tracking store)")}");
            if (lineage.Run?.Source is { } s)
            {
                await o.WriteLineAsync($"  git        {(s.GitCommit.Length > 0 ? s.GitCommit : "-")} {s.GitBranch} {s.GitRemote}{(s.GitDirty ? " (dirty: see metricstore/git.diff)" : "")}");
                await o.WriteLineAsync($"  env        {s.Runtime} on {s.Os}, host {s.Host}, user {s.User}");
                await o.WriteLineAsync($"  command    {s.CommandLine}");
            }

            await o.WriteLineAsync($"  params     {string.Join(", ", v.Params.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"))}");
            await o.WriteLineAsync($"  metrics    {string.Join(", ", v.Metrics.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => $"{m.Key}={m.Value.ToString("G6", CultureInfo.InvariantCulture)}"))}");
            await o.WriteLineAsync($"  artifacts  {string.Join(", ", lineage.ArtifactPaths)}");
            return 0;
        });
        return command;
    }

    private static Command Audit(CliContext context)
    {
        var name = new Argument<string>("NAME");
        var version = new Option<long>("--version") { Description = "Only this version" };
        var command = new Command("audit", "Who did what to a model, refused attempts included, oldest first.") { name, version };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var audit = await client.Registry.ListAuditAsync(new ListAuditRequest { Name = parse.GetValue(name)!, Version = parse.GetValue(version) }, cancellationToken: cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJsonArray(context.Output, audit.Records, r => JsonValue.Create(r.Id));
            }
            else
            {
                Output.WriteTable(
                    context.Output,
                    ["TIME", "ACTOR", "ACTION", "VERSION", "FROM", "TO", "ALLOWED", "COMMENT"],
                    audit.Records.Select(r => new[] { Output.Time(r.TimeMs), r.Actor, r.Action, r.Version == 0 ? "-" : r.Version.ToString(CultureInfo.InvariantCulture), r.From, r.To, r.Allowed ? "yes" : "REFUSED", r.Comment }),
                    maxCell: 200);
            }

            return 0;
        });
        return command;
    }

    private static Command Webhooks(CliContext context)
    {
        var command = new Command("webhooks", "Signed event notifications of a model.");

        var model = new Argument<string>("NAME");
        var url = new Option<string>("--url") { Required = true };
        var secret = new Option<string>("--secret") { Description = "HMAC-SHA256 key for X-MetricStore-Signature, 16..256 characters", Required = true };
        var events = new Option<string[]>("--event") { Description = "version.created, stage.changed, alias.changed, request.created, request.approved, request.rejected; repeat; none = all", AllowMultipleArgumentsPerToken = false };
        var add = new Command("add", "Subscribe a URL to a model's events.") { model, url, secret, events };
        add.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var request = new AddWebhookRequest { ModelName = parse.GetValue(model)!, Url = parse.GetValue(url)!, Secret = parse.GetValue(secret)! };
            request.Events.AddRange(parse.GetValue(events) ?? []);
            var hook = await client.Registry.AddWebhookAsync(request, cancellationToken: cancellationToken);
            await WriteAsync(context, parse, hook, JsonValue.Create(hook.WebhookId), $"webhook {hook.WebhookId} → {hook.Url} ({(hook.Events.Count == 0 ? "all events" : string.Join(", ", hook.Events))})");
            return 0;
        });
        command.Subcommands.Add(add);

        var lsModel = new Argument<string>("NAME");
        var ls = new Command("ls", "A model's webhooks.") { lsModel };
        ls.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var hooks = await client.Registry.ListWebhooksAsync(new ListWebhooksRequest { ModelName = parse.GetValue(lsModel)! }, cancellationToken: cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJsonArray(context.Output, hooks.Webhooks, h => JsonValue.Create(h.WebhookId));
            }
            else
            {
                Output.WriteTable(context.Output, ["ID", "URL", "EVENTS"], hooks.Webhooks.Select(h => new[] { h.WebhookId.ToString(CultureInfo.InvariantCulture), h.Url, h.Events.Count == 0 ? "all" : string.Join(",", h.Events) }), maxCell: 200);
            }

            return 0;
        });
        command.Subcommands.Add(ls);

        var id = new Argument<long>("WEBHOOK_ID");
        var deliveries = new Command("deliveries", "Delivery history: attempts, last status, last error.") { id };
        deliveries.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var list = await client.Registry.ListDeliveriesAsync(new ListDeliveriesRequest { WebhookId = parse.GetValue(id) }, cancellationToken: cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJsonArray(context.Output, list.Deliveries, d => JsonValue.Create(d.DeliveryId));
            }
            else
            {
                Output.WriteTable(
                    context.Output,
                    ["ID", "EVENT", "DELIVERED", "ATTEMPTS", "LAST STATUS", "LAST ERROR", "CREATED"],
                    list.Deliveries.Select(d => new[] { d.DeliveryId.ToString(CultureInfo.InvariantCulture), d.Event, d.Delivered ? "yes" : "no", d.Attempts.ToString(CultureInfo.InvariantCulture), d.LastStatusCode.ToString(CultureInfo.InvariantCulture), d.LastError, Output.Time(d.CreatedTimeMs) }),
                    maxCell: 200);
            }

            return 0;
        });
        command.Subcommands.Add(deliveries);
        return command;
    }

    private static async Task WriteAsync(CliContext context, ParseResult parse, IMessage message, JsonNode id, string human)
    {
        if (context.Json(parse))
        {
            Output.WriteJson(context.Output, Output.ToJson(message, id));
        }
        else
        {
            await context.Output.WriteLineAsync(human);
        }
    }

    private static string Describe(TransitionRequest r) =>
        $"request {r.RequestId}: {r.Name}/{r.Version} {StageName(r.FromStage)} → {StageName(r.ToStage)}, {r.State.ToString().ToLowerInvariant()}" +
        (r.DecidedBy.Length > 0 ? $" by {r.DecidedBy}" : r.State == RequestState.Pending ? " (an approver other than you must approve it)" : "");

    private static string StageName(Stage stage) => stage switch
    {
        Stage.Staging => "Staging",
        Stage.Production => "Production",
        Stage.Archived => "Archived",
        _ => "None",
    };

    private static Stage ParseStage(string text) => text.ToLowerInvariant() switch
    {
        "staging" => Stage.Staging,
        "production" => Stage.Production,
        "archived" => Stage.Archived,
        "none" => Stage.None,
        _ => throw new UsageException($"--stage '{text}' is not Staging, Production, Archived or None"),
    };

    private static (string Name, long Version) NameVersion(string text)
    {
        var slash = text.LastIndexOf('/');
        if (slash <= 0 || !long.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var version) || version <= 0)
        {
            throw new UsageException($"'{text}' is not NAME/VERSION (e.g. fraud-model/3)");
        }

        return (text[..slash], version);
    }
}
