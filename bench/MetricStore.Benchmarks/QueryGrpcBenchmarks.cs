using BenchmarkDotNet.Attributes;
using MetricStore.Client;
using MetricStore.Protocol.V1;
using MetricStore.Server;
using MetricStore.Storage;
using Microsoft.Extensions.Logging;

namespace MetricStore.Benchmarks;

/// <summary>
/// A 1000-bucket ReadDownsampled of a sealed 10M-point series through a real server (Kestrel on
/// loopback, gRPC client in this process), to separate the transport's cost from the kernel's
/// (QueryBenchmarks), and the same with 10 buckets (same work on the server, tiny response).
/// </summary>
[MemoryDiagnoser]
public class QueryGrpcBenchmarks
{
    private const int Points = 10_000_000;
    private const int PerRequest = 500_000;
    private string _directory = "";
    private MetricStoreServer _server = null!;
    private MetricStoreClient _client = null!;
    private ReadDownsampledRequest _request1000 = null!;
    private ReadDownsampledRequest _request10 = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        _server = await MetricStoreServer.StartAsync(
            new MetricStoreServerOptions { DataDirectory = _directory, GrpcPort = 0, HttpPort = 0, Durability = Durability.Async },
            logging => logging.ClearProviders());
        _client = new MetricStoreClient(_server.GrpcAddress.ToString());
        await _client.CreateExperimentAsync("bench");
        var run = (await _client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = "bench" })).RunId;
        var key = Core.SeriesKey.Create("key", run, "train/loss");
        var random = new Random(1);
        ulong seq = 0;
        foreach (var batch in LossCurve.Batches(key, Points, PerRequest, random, () => ++seq))
        {
            await _server.Storage.WriteAsync(batch);
        }

        await _server.Storage.SealNowAsync();
        _request1000 = new ReadDownsampledRequest { RunIds = { run }, Metric = "train/loss", Buckets = 1000, StartStep = 0, EndStep = Points - 1 };
        _request10 = new ReadDownsampledRequest { RunIds = { run }, Metric = "train/loss", Buckets = 10, StartStep = 0, EndStep = Points - 1 };
        await _client.Query.ReadDownsampledAsync(_request1000);
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        _client.Dispose();
        await _server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(Baseline = true)]
    public async Task<int> Grpc1000Buckets() => (await _client.Query.ReadDownsampledAsync(_request1000)).Series[0].Count.Count;

    [Benchmark]
    public async Task<int> Grpc10Buckets() => (await _client.Query.ReadDownsampledAsync(_request10)).Series[0].Count.Count;
}
