using System.CommandLine;
using Grpc.Core;
using MetricStore.Cli.Commands;
using MetricStore.Core;

namespace MetricStore.Cli;

/// <summary>
/// The metricstore command. Built as a value so tests run it in-process with their own writers.
/// Exit codes: 0 success, 1 the server refused the request or failed, 2 bad usage, 3 the server
/// could not be reached.
/// </summary>
public static class CliApp
{
    public const int ExitRefused = 1;
    public const int ExitUsage = 2;
    public const int ExitUnavailable = 3;

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var context = new CliContext(output, error);
        var root = new RootCommand("MetricStore: experiment tracking, metrics and model registry.");
        root.Options.Add(context.ServerOption);
        root.Options.Add(context.JsonOption);
        root.Options.Add(context.TokenOption);
        root.Options.Add(context.UserOption);
        root.Subcommands.Add(ServeCommand.Create(context));
        root.Subcommands.Add(ExperimentsCommands.Create(context));
        root.Subcommands.Add(RunsCommands.Create(context));
        root.Subcommands.Add(ArtifactsCommands.Create(context));
        root.Subcommands.Add(RegistryCommands.Create(context));
        root.Subcommands.Add(UsersCommands.Create(context));
        root.Subcommands.Add(BenchCommand.Create(context));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors)
            {
                await error.WriteLineAsync($"error: {e.Message}");
            }

            await error.WriteLineAsync("Run 'metricstore --help' for usage.");
            return ExitUsage;
        }

        // Signals are left to the process (Ctrl+C ends a client command; 'serve' stops gracefully
        // through the host's own handler), so nothing here races the server's shutdown.
        var invocation = new InvocationConfiguration { Output = output, Error = error, ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false };
        try
        {
            return await parse.InvokeAsync(invocation, cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
        {
            await error.WriteLineAsync(
                $"error: cannot reach the MetricStore server at {context.ServerUrlFor(parse)} ({e.Status.Detail}). " +
                "Start one with 'metricstore serve', or pass --server URL / set METRICSTORE_URL.");
            return ExitUnavailable;
        }
        catch (RpcException e)
        {
            await error.WriteLineAsync($"error: {e.Status.Detail} ({e.StatusCode})");
            return ExitRefused;
        }
        catch (MetricStoreException e)
        {
            await error.WriteLineAsync($"error: {e.Message}");
            return e.Code == ErrorCode.InvalidArgument ? ExitUsage : ExitRefused;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            // Local files (artifacts) and verification failures: the message says which file and why.
            await error.WriteLineAsync($"error: {e.Message}");
            return ExitRefused;
        }
        catch (UsageException e)
        {
            await error.WriteLineAsync($"error: {e.Message}");
            return ExitUsage;
        }
    }
}

/// <summary>Bad command-line input found after parsing (e.g. a --param without '=').</summary>
internal sealed class UsageException(string message) : Exception(message);
