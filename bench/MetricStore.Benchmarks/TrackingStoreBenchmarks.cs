using BenchmarkDotNet.Attributes;
using MetricStore.Tracking;

namespace MetricStore.Benchmarks;

/// <summary>
/// Metadata operations on a real SQLite file (synchronous=FULL, so each write pays an fsync).
/// These bound how fast a job can start runs and log params; they are not on the metrics path.
/// </summary>
[MemoryDiagnoser]
public class TrackingStoreBenchmarks
{
    private string _directory = "";
    private TrackingStore _store = null!;
    private string _runId = "";
    private readonly Dictionary<string, string> _params = Enumerable.Range(0, 20).ToDictionary(i => $"param_{i}", i => $"value_{i}");

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        _store = TrackingStore.Open(new TrackingStoreOptions { DataDirectory = _directory });
        _store.CreateExperiment("bench");
        _runId = _store.CreateRun(new NewRun { ExperimentName = "bench", Params = _params }).Id;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _store.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>A run with 20 params in one transaction.</summary>
    [Benchmark]
    public Run CreateRunWith20Params() => _store.CreateRun(new NewRun { ExperimentName = "bench", Params = _params });

    /// <summary>Re-logging 20 identical params: the idempotent retry path (reads only, one commit).</summary>
    [Benchmark]
    public void RelogSameParams() => _store.LogParams(_runId, _params);

    [Benchmark]
    public Run GetRun() => _store.GetRun(_runId);
}
