using System.CommandLine;
using System.Text.Json.Nodes;
using MetricStore.Server;
using MetricStore.Tracking;
using MetricStore.Tracking.Registry;

namespace MetricStore.Cli.Commands;

/// <summary>metricstore users add|ls: offline, on the data directory (the server may be running).</summary>
internal static class UsersCommands
{
    public static Command Create(CliContext context)
    {
        var command = new Command("users", "Create and list users of a data directory (for 'serve --auth').");
        command.Subcommands.Add(AddCommand(context));
        command.Subcommands.Add(ListCommand(context));
        return command;
    }

    private static Option<string> DataOption() => new("--data")
    {
        Description = "The server's data directory",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("METRICSTORE_DATA") ?? MetricStoreServerOptions.DefaultDataDirectory,
    };

    private static Command AddCommand(CliContext context)
    {
        var name = new Argument<string>("NAME");
        var role = new Option<string>("--role") { Description = "reader, writer, approver or admin", Required = true };
        role.AcceptOnlyFromAmong("reader", "writer", "approver", "admin");
        var data = DataOption();
        var command = new Command("add", "Create a user and print its API token once (only a hash is kept).") { name, role, data };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var store = TrackingStore.Open(new TrackingStoreOptions { DataDirectory = parse.GetValue(data)! });
            var (user, token) = store.AddUser(parse.GetValue(name)!, Enum.Parse<Role>(parse.GetValue(role)!, ignoreCase: true));
            if (context.Json(parse))
            {
                Output.WriteJson(context.Output, new JsonObject { ["id"] = user.Name, ["name"] = user.Name, ["role"] = user.Role.ToString().ToLowerInvariant(), ["token"] = token });
            }
            else
            {
                await context.Output.WriteLineAsync($"created {user.Role.ToString().ToLowerInvariant()} '{user.Name}'. Its token (shown only now):");
                await context.Output.WriteLineAsync(token);
            }

            return 0;
        });
        return command;
    }

    private static Command ListCommand(CliContext context)
    {
        var data = DataOption();
        var command = new Command("ls", "List users and roles (never tokens).") { data };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var store = TrackingStore.Open(new TrackingStoreOptions { DataDirectory = parse.GetValue(data)! });
            var users = store.ListUsers();
            if (context.Json(parse))
            {
                Output.WriteJson(context.Output, new JsonArray(users.Select(u => (JsonNode)new JsonObject { ["id"] = u.Name, ["name"] = u.Name, ["role"] = u.Role.ToString().ToLowerInvariant(), ["createdTimeMs"] = u.CreatedTimeMs }).ToArray()));
            }
            else
            {
                Output.WriteTable(context.Output, ["NAME", "ROLE", "CREATED"], users.Select(u => new[] { u.Name, u.Role.ToString().ToLowerInvariant(), Output.Time(u.CreatedTimeMs) }));
            }

            await Task.CompletedTask;
            return 0;
        });
        return command;
    }
}
