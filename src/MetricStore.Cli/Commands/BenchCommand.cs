using System.CommandLine;
using MetricStore.Cli.Bench;

namespace MetricStore.Cli.Commands;

/// <summary>metricstore bench ingest: the end-to-end throughput harness.</summary>
internal static class BenchCommand
{
    public static Command Create(CliContext context)
    {
        var command = new Command("bench", "Benchmarks that validate a server end to end.");
        command.Subcommands.Add(IngestCommand(context));
        command.Subcommands.Add(QueryCommand(context));
        command.Subcommands.Add(SearchCommand(context));
        command.Subcommands.Add(ArtifactsCommand(context));
        command.Subcommands.Add(BytesCommand(context));
        return command;
    }

    private static Command IngestCommand(CliContext context)
    {
        var writers = new Option<int>("--writers") { Description = "Concurrent writers (simulated ranks), each with its own connection", DefaultValueFactory = _ => 4 };
        var series = new Option<int>("--series") { Description = "Series per writer (one batch each per request)", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch") { Description = "Points per series batch", DefaultValueFactory = _ => 10_000 };
        var duration = new Option<double>("--duration") { Description = "Seconds of load", DefaultValueFactory = _ => 10 };
        var durability = new Option<string>("--durability") { Description = "Durability of the server it starts: sync or async", DefaultValueFactory = _ => "sync" };
        durability.AcceptOnlyFromAmong("sync", "async");
        var noCeiling = new Option<bool>("--no-ceiling") { Description = "Skip the raw-gRPC ceiling run" };
        var warmup = new Option<double>("--warmup") { Description = "Seconds of load before the timed --duration starts (JIT tier-up of a fresh server takes 15-20 s on two busy cores; first seals); their points are verified but not timed", DefaultValueFactory = _ => 20 };
        var inFlight = new Option<int>("--in-flight") { Description = "Requests each writer keeps in flight (unacknowledged); fewer trade throughput for ack latency", DefaultValueFactory = _ => IngestBench.DefaultInFlight };
        var sealThreshold = new Option<long?>("--seal-threshold") { Description = "Passed to the server it starts: points accepted since the last seal that start the next seal (default: the server's)" };
        var command = new Command("ingest", "Stream a noisy float32 loss curve from several writers, wait for every ack, verify every point, and compare with the raw gRPC ceiling. Without --server it starts a server as a child process on a temp directory.")
        {
            writers, series, batch, duration, warmup, durability, noCeiling, inFlight, sealThreshold,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new IngestBenchOptions(
                parse.GetValue(context.ServerOption),
                Positive("--writers", parse.GetValue(writers)),
                Positive("--series", parse.GetValue(series)),
                Positive("--batch", parse.GetValue(batch)),
                parse.GetValue(duration) > 0 ? parse.GetValue(duration) : throw new UsageException("--duration must be more than 0 seconds"),
                parse.GetValue(durability)!,
                context.Json(parse),
                !parse.GetValue(noCeiling),
                parse.GetValue(sealThreshold) is { } threshold ? Positive("--seal-threshold", threshold) : null,
                parse.GetValue(warmup) >= 0 ? parse.GetValue(warmup) : throw new UsageException("--warmup must be 0 or more seconds"),
                Positive("--in-flight", parse.GetValue(inFlight)));
            return await IngestBench.RunAsync(options, context.Output, context.Error, cancellationToken);
        });
        return command;
    }

    private static Command QueryCommand(CliContext context)
    {
        var data = new Option<string?>("--data") { Description = "Build the dataset here, or reuse the one built here before (default: a temp directory, removed after)" };
        var bigSteps = new Option<int>("--big-steps") { Description = "Steps of the long series", DefaultValueFactory = _ => 10_000_000 };
        var runs = new Option<int>("--runs") { Description = "Short series (one run each) for LatestValues", DefaultValueFactory = _ => 1000 };
        var runSteps = new Option<int>("--run-steps") { Description = "Steps of each short series", DefaultValueFactory = _ => 100_000 };
        var iterations = new Option<int>("--iterations") { Description = "Timed calls per measurement", DefaultValueFactory = _ => 200 };
        var command = new Command("query", "Measure downsampled reads (full range and zooms), full-resolution Arrow reads and LatestValues against a server it starts as a child process, with DuckDB over the same Parquet files as the baseline; every answer is checked against a full scan.")
        {
            data, bigSteps, runs, runSteps, iterations,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new QueryBenchOptions(
                parse.GetValue(data),
                Positive("--big-steps", parse.GetValue(bigSteps)) >= 1000 ? parse.GetValue(bigSteps) : throw new UsageException("--big-steps must be at least 1000"),
                Positive("--runs", parse.GetValue(runs)),
                Positive("--run-steps", parse.GetValue(runSteps)),
                Positive("--iterations", parse.GetValue(iterations)),
                context.Json(parse));
            return await QueryBench.RunAsync(options, context.Output, context.Error, cancellationToken);
        });
        return command;
    }

    private static Command SearchCommand(CliContext context)
    {
        var runs = new Option<int>("--runs") { Description = "Runs to import (20 params, 5 tags, 10 metric summaries each)", DefaultValueFactory = _ => 100_000 };
        var iterations = new Option<int>("--iterations") { Description = "Timed calls per search", DefaultValueFactory = _ => 200 };
        var command = new Command("search", "Import runs into a temp data directory, start a server on it, and time typical run searches (each verified against a brute-force search).")
        {
            runs, iterations,
        };
        command.SetAction(async (parse, cancellationToken) =>
            await SearchBench.RunAsync(new SearchBenchOptions(Positive("--runs", parse.GetValue(runs)), Positive("--iterations", parse.GetValue(iterations)), context.Json(parse)), context.Output, context.Error, cancellationToken));
        return command;
    }

    private static Command BytesCommand(CliContext context)
    {
        var points = new Option<int>("--points") { Description = "Points of each synthetic curve", DefaultValueFactory = _ => 10_000_000 };
        var logs = new Option<string?>("--logs") { Description = "Also measure the real curves in this folder (e.g. ../shared/data/training-logs)" };
        var command = new Command("bytes", "Bytes per point on disk, written as a seal writes them: the synthetic loss curve with float32-origin and float64 noise, and with --logs the real training curves.")
        {
            points, logs,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var folder = parse.GetValue(logs);
            if (folder is not null && !Directory.Exists(folder))
            {
                throw new UsageException($"--logs '{folder}' is not a directory");
            }

            return await BytesBench.RunAsync(new BytesBenchOptions(Positive("--points", parse.GetValue(points)), folder, context.Json(parse)), context.Output, context.Error, cancellationToken);
        });
        return command;
    }

    private static Command ArtifactsCommand(CliContext context)
    {
        var size = new Option<int>("--size-mb") { Description = "MiB of the file transferred", DefaultValueFactory = _ => 1024 };
        var repeats = new Option<int>("--repeats") { Description = "Rounds of every transfer (the median is reported)", DefaultValueFactory = _ => 3 };
        var httpUrl = new Option<string?>("--http") { Description = "HTTP/JSON address of the --server, to measure the HTTP routes too" };
        var command = new Command("artifacts", "Upload and download one incompressible file over gRPC and HTTP, each transfer verified by sha256, against the machine's own read + hash + write + fsync ceiling. Without --server it starts a server as a child process on a temp directory.")
        {
            size, repeats, httpUrl,
        };
        command.SetAction(async (parse, cancellationToken) =>
            await ArtifactBench.RunAsync(
                new ArtifactBenchOptions(parse.GetValue(context.ServerOption), parse.GetValue(httpUrl), Positive("--size-mb", parse.GetValue(size)), Positive("--repeats", parse.GetValue(repeats)), context.Json(parse)),
                context.Output,
                context.Error,
                cancellationToken));
        return command;
    }

    private static int Positive(string name, int value) => value > 0 ? value : throw new UsageException($"{name} must be at least 1 (got {value})");

    private static long Positive(string name, long value) => value > 0 ? value : throw new UsageException($"{name} must be at least 1 (got {value})");
}
