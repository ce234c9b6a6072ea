using System.CommandLine;
using System.Globalization;
using MetricStore.Server;
using Microsoft.Extensions.Logging;

namespace MetricStore.Cli.Commands;

/// <summary>
/// metricstore serve: the server on an embedded data directory. Each flag falls back to an
/// environment variable, then to the default: --data (METRICSTORE_DATA, ./metricstore-data),
/// --grpc-port (METRICSTORE_GRPC_PORT, 50051), --http-port (METRICSTORE_HTTP_PORT, 8765),
/// --host (METRICSTORE_HOST, 127.0.0.1).
/// </summary>
internal static class ServeCommand
{
    public static Command Create(CliContext context)
    {
        var data = new Option<string?>("--data") { Description = "Data directory (env METRICSTORE_DATA; default ./metricstore-data)" };
        var grpcPort = new Option<int?>("--grpc-port") { Description = "gRPC port, 0 = any free port (env METRICSTORE_GRPC_PORT; default 50051)" };
        var httpPort = new Option<int?>("--http-port") { Description = "HTTP/JSON port, 0 = any free port (env METRICSTORE_HTTP_PORT; default 8765)" };
        var host = new Option<string?>("--host") { Description = "Address to bind (env METRICSTORE_HOST; default 127.0.0.1, loopback only)" };
        var durability = new Option<string?>("--durability") { Description = "sync (ack after fsync, default) or async (ack after write, fsync every 50 ms) (env METRICSTORE_DURABILITY)" };
        durability.AcceptOnlyFromAmong("sync", "async");
        var sealThreshold = new Option<long?>("--seal-threshold") { Description = "Points accepted since the last seal that start the next seal into Parquet (default 4000000)" };
        var queryCache = new Option<int?>("--query-cache-mb") { Description = "MiB of decoded row groups kept for queries (env METRICSTORE_QUERY_CACHE_MB; default 512)" };
        var memoryBudget = new Option<int?>("--memory-budget-mb") { Description = "MiB the head and the query cache hold together; the cache gives way as the head grows (env METRICSTORE_MEMORY_BUDGET_MB; default 384)" };
        var scanMemory = new Option<int?>("--scan-memory-mb") { Description = "MiB of decoded columns long raw reads (scans) hold of their own, all together; past it a scan decodes one row group at a time or waits its turn (env METRICSTORE_SCAN_MEMORY_MB; default 48)" };
        var ingestBuffer = new Option<int?>("--ingest-buffer-mb") { Description = "MiB of decoded write requests all ingest streams hold at once; past it a stream reads its next request only when room is made (env METRICSTORE_INGEST_BUFFER_MB; default 64)" };
        var heapSlack = new Option<int?>("--heap-slack-mb") { Description = "Start a background GC when the heap grows this many MiB past what is live; 0 = the GC's own pacing (env METRICSTORE_HEAP_SLACK_MB; default 64)" };
        var heapCompact = new Option<int?>("--heap-compact-free-mb") { Description = "Compact the heap (at most every 10 s) when a full GC leaves more than this many MiB free; 0 = never (env METRICSTORE_HEAP_COMPACT_FREE_MB; default 128)" };
        var maxArtifact = new Option<long?>("--max-artifact-mb") { Description = "Largest artifact accepted, in MiB (env METRICSTORE_MAX_ARTIFACT_MB; default 65536 = 64 GiB)" };
        var readStall = new Option<int?>("--read-stall-seconds") { Description = "End a streamed read whose client accepts nothing for this long, releasing its snapshot (env METRICSTORE_READ_STALL_SECONDS; default 120)" };
        var auth = new Option<bool>("--auth") { Description = "Require a user token on every call (users come from 'metricstore users add'; env METRICSTORE_AUTH=1)" };
        var sink = new Option<string?>("--ingest-sink") { Description = "Benchmark only: 'discard' acknowledges ingest without storing (the gRPC ceiling)", Hidden = true };
        sink.AcceptOnlyFromAmong("store", "discard");
        var command = new Command("serve", "Start the server (gRPC and HTTP/JSON) on a data directory; stop with Ctrl+C or SIGTERM.")
        {
            data, grpcPort, httpPort, host, durability, sealThreshold, queryCache, memoryBudget, scanMemory, ingestBuffer, heapSlack, heapCompact, maxArtifact, readStall, auth, sink,
        };

        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new MetricStoreServerOptions
            {
                DataDirectory = parse.GetValue(data) ?? Env("METRICSTORE_DATA") ?? MetricStoreServerOptions.DefaultDataDirectory,
                GrpcPort = parse.GetValue(grpcPort) ?? EnvInt("METRICSTORE_GRPC_PORT") ?? MetricStoreServerOptions.DefaultGrpcPort,
                HttpPort = parse.GetValue(httpPort) ?? EnvInt("METRICSTORE_HTTP_PORT") ?? MetricStoreServerOptions.DefaultHttpPort,
                Host = parse.GetValue(host) ?? Env("METRICSTORE_HOST") ?? MetricStoreServerOptions.DefaultHost,
                Durability = (parse.GetValue(durability) ?? Env("METRICSTORE_DURABILITY") ?? "sync") switch
                {
                    "sync" => Storage.Durability.Sync,
                    "async" => Storage.Durability.Async,
                    var other => throw new UsageException($"durability '{other}' is not sync or async"),
                },
                DiscardIngest = parse.GetValue(sink) == "discard",
                SealThresholdPoints = parse.GetValue(sealThreshold),
                QueryCacheMiB = parse.GetValue(queryCache) ?? EnvInt("METRICSTORE_QUERY_CACHE_MB"),
                MemoryBudgetMiB = parse.GetValue(memoryBudget) ?? EnvInt("METRICSTORE_MEMORY_BUDGET_MB"),
                ScanMemoryMiB = parse.GetValue(scanMemory) ?? EnvInt("METRICSTORE_SCAN_MEMORY_MB"),
                IngestBufferMiB = parse.GetValue(ingestBuffer) ?? EnvInt("METRICSTORE_INGEST_BUFFER_MB") ?? MetricStoreServerOptions.DefaultIngestBufferMiB,
                HeapSlackMiB = parse.GetValue(heapSlack) ?? EnvInt("METRICSTORE_HEAP_SLACK_MB") ?? MetricStoreServerOptions.ServeHeapSlackMiB,
                HeapCompactFreeMiB = parse.GetValue(heapCompact) ?? EnvInt("METRICSTORE_HEAP_COMPACT_FREE_MB") ?? MetricStoreServerOptions.ServeHeapCompactFreeMiB,
                Auth = parse.GetValue(auth) || Env("METRICSTORE_AUTH") is "1" or "true",
                MaxArtifactBytes = (parse.GetValue(maxArtifact) ?? EnvInt("METRICSTORE_MAX_ARTIFACT_MB")) * 1024L * 1024,
                ReadStallTimeout = (parse.GetValue(readStall) ?? EnvInt("METRICSTORE_READ_STALL_SECONDS")) is { } stall
                    ? TimeSpan.FromSeconds(stall)
                    : MetricStoreServerOptions.DefaultReadStallTimeout,
            };

            await using var server = await MetricStoreServer.StartAsync(
                options,
                logging => logging.SetMinimumLevel(LogLevel.Information)
                    .AddFilter("Microsoft.AspNetCore", LogLevel.Warning)
                    .AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning)
                    .AddFilter("Grpc", LogLevel.Warning),
                cancellationToken);

            var output = context.Output;
            await output.WriteLineAsync("MetricStore is serving");
            await output.WriteLineAsync($"  data directory  {server.DataDirectory}");
            await output.WriteLineAsync($"  gRPC            {Base(server.GrpcAddress)}");
            await output.WriteLineAsync($"  HTTP/JSON       {Base(server.HttpAddress)}");
            await output.WriteLineAsync($"  health          {Base(server.HttpAddress)}/healthz");
            await output.WriteLineAsync($"  durability      {options.Durability.ToString().ToLowerInvariant()}{(options.DiscardIngest ? "  (ingest sink: DISCARD, benchmark only)" : "")}");
            var recovery = server.Storage.Recovery;
            await output.WriteLineAsync($"  WAL recovery    {recovery.Points} points from {recovery.Records} records in {recovery.Elapsed.TotalMilliseconds:F0} ms");
            await output.WriteLineAsync(options.Auth
                ? "  auth            on: every call needs a user token (metricstore users add)"
                : "  auth            OFF: every call acts as the local admin; start with --auth to require tokens");
            await output.WriteLineAsync("Press Ctrl+C to stop.");
            await output.FlushAsync(cancellationToken);

            await server.WaitForShutdownAsync(cancellationToken);
            await server.StopAsync(CancellationToken.None);
            await output.WriteLineAsync("MetricStore stopped cleanly.");
            return 0;
        });
        return command;
    }

    private static string Base(Uri uri) => uri.GetLeftPart(UriPartial.Authority);

    private static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

    private static int? EnvInt(string name)
    {
        var value = Env(name);
        if (value is null)
        {
            return null;
        }

        return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var port)
            ? port
            : throw new UsageException($"environment variable {name}='{value}' is not an integer");
    }
}
