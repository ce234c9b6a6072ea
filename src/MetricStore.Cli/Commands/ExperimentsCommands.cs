using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;

namespace MetricStore.Cli.Commands;

/// <summary>metricstore experiments create|list.</summary>
internal static class ExperimentsCommands
{
    public static Command Create(CliContext context)
    {
        var command = new Command("experiments", "Create and list experiments.");
        command.Subcommands.Add(CreateCommand(context));
        command.Subcommands.Add(ListCommand(context));
        return command;
    }

    private static Command CreateCommand(CliContext context)
    {
        var name = new Argument<string>("NAME") { Description = "Unique experiment name, 1..256 characters" };
        var description = new Option<string?>("--description") { Description = "Markdown description" };
        var tags = new Option<string[]>("--tag") { Description = "KEY=VALUE tag; repeat for more", AllowMultipleArgumentsPerToken = false };
        var command = new Command("create", "Create an experiment; fails if the name exists.") { name, description, tags };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var experiment = await client.CreateExperimentAsync(
                parse.GetValue(name)!, parse.GetValue(description), Output.KeyValues("--tag", parse.GetValue(tags)), cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJson(context.Output, Output.ToJson(experiment, JsonValue.Create(experiment.ExperimentId)));
            }
            else
            {
                await context.Output.WriteLineAsync($"created experiment '{experiment.Name}' (id {experiment.ExperimentId})");
            }

            return 0;
        });
        return command;
    }

    private static Command ListCommand(CliContext context)
    {
        var command = new Command("list", "List experiments in creation order.");
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var experiments = await client.ListExperimentsAsync(cancellationToken);
            if (context.Json(parse))
            {
                Output.WriteJsonArray(context.Output, experiments, e => JsonValue.Create(e.ExperimentId));
                return 0;
            }

            if (experiments.Count == 0)
            {
                await context.Output.WriteLineAsync("no experiments yet; create one with: metricstore experiments create NAME");
                return 0;
            }

            Output.WriteTable(
                context.Output,
                ["ID", "NAME", "CREATED", "DESCRIPTION"],
                experiments.Select(e => new[]
                {
                    e.ExperimentId.ToString(CultureInfo.InvariantCulture),
                    e.Name,
                    Output.Time(e.CreatedTimeMs),
                    e.Description.ReplaceLineEndings(" "),
                }));
            return 0;
        });
        return command;
    }
}
