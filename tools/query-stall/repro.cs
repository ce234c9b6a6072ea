// Repro for the lost-response stall (docs/benchmarks.md): sequential unary ReadDownsampled calls whose
// responses (about 67 KB for 1000 buckets) are just over the client's 64 KiB HTTP/2 stream window, as
// in 'bench query'. Counts calls that miss a 5 s deadline.
//
//   dotnet run -c Release tools/query-stall/repro.cs -- URL CALLS WINDOW [BUCKETS]
//
// URL: a running server's gRPC address (start one with 'metricstore serve --data <new dir>');
// WINDOW: 'default' (SocketsHttpHandler's 65,535-byte initial stream window) or 'client' (the window
// MetricStoreChannel sets); BUCKETS (default 1100, about 66 KB per answer as in the bench).
// Prints one line: window, answer size, calls, stalls, calls/s.
#:project ../../src/MetricStore.Client/MetricStore.Client.csproj
using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using MetricStore.Client;
using MetricStore.Protocol.V1;

var url = args.Length > 0 ? args[0] : "http://127.0.0.1:50051";
var calls = args.Length > 1 ? int.Parse(args[1]) : 100_000;
var window = args.Length > 2 ? args[2] : "default";
var buckets = args.Length > 3 ? int.Parse(args[3]) : 1100;

string runId;
using (var client = new MetricStoreClient(url))
{
    await using var run = await client.StartRunAsync("stall-repro");
    for (var step = 0; step < 100_000; step++)
    {
        run.Log("loss", step, (float)(1.0 / (1 + step)));
    }

    await run.FlushAsync();
    runId = run.Id;
}

using var channel = window == "client"
    ? MetricStoreChannel.Create(new Uri(url))
    : GrpcChannel.ForAddress(url);
var query = new QueryService.QueryServiceClient(channel);
var request = new ReadDownsampledRequest { Metric = "loss", Buckets = buckets, RunIds = { runId } };
var size = (await query.ReadDownsampledAsync(request)).CalculateSize();
var stalls = 0;
var stopwatch = Stopwatch.StartNew();
for (var i = 0; i < calls; i++)
{
    try
    {
        await query.ReadDownsampledAsync(request, deadline: DateTime.UtcNow.AddSeconds(5));
    }
    catch (RpcException e) when (e.StatusCode == StatusCode.DeadlineExceeded)
    {
        stalls++;
        Console.Error.WriteLine($"call {i}: no response in 5 s");
    }
}

Console.WriteLine($"window={window} response_bytes={size} calls={calls} stalls={stalls} calls_per_sec={calls / stopwatch.Elapsed.TotalSeconds:F0}");
