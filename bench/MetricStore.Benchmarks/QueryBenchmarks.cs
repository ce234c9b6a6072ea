using BenchmarkDotNet.Attributes;
using MetricStore.Core;
using MetricStore.Storage;
using MetricStore.Storage.Query;

namespace MetricStore.Benchmarks;

/// <summary>
/// The query kernels in process, without gRPC: a 1000-bucket read of a sealed 10M-point series
/// (warm cache), the same over the head only, a full scan of the same points as the baseline
/// (what the rollups save), and a raw streamed read.
/// </summary>
[MemoryDiagnoser]
public class QueryBenchmarks
{
    private const int Points = 10_000_000;
    private const int PerRequest = 500_000;
    private string _directory = "";
    private StorageEngine _engine = null!;
    private SeriesKey _sealed = null!;
    private SeriesKey _head = null!;
    private BucketGrid _grid = null!;
    private SeriesColumns _points = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        var run = RunId.New();
        _sealed = SeriesKey.Create("key", run, "train/loss");
        _head = SeriesKey.Create("key", run, "head/loss");
        _engine = StorageEngine.Open(new StorageOptions { DataDirectory = _directory, SealThresholdPoints = long.MaxValue, Durability = Durability.Async });
        var random = new Random(1);
        ulong seq = 0;
        foreach (var key in new[] { _sealed, _head })
        {
            foreach (var batch in LossCurve.Batches(key, Points, PerRequest, random, () => ++seq))
            {
                _engine.WriteAsync(batch).AsTask().GetAwaiter().GetResult();
            }

            if (key == _sealed)
            {
                _engine.SealNowAsync().GetAwaiter().GetResult();
            }
        }

        _grid = BucketGrid.Create(0, Points - 1, 1000);
        _points = _engine.ReadSeriesAsync(_sealed).AsTask().GetAwaiter().GetResult()!;
        Downsample1000Sealed(); // warm the cache
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark]
    public long Downsample1000Sealed()
    {
        using var result = _engine.DownsampleAsync(_sealed, _grid).GetAwaiter().GetResult()!;
        return result.Buckets[^1].Count;
    }

    [Benchmark]
    public long Downsample1000Head()
    {
        using var result = _engine.DownsampleAsync(_head, _grid).GetAwaiter().GetResult()!;
        return result.Buckets[^1].Count;
    }

    /// <summary>The baseline: the same 1000 buckets by scanning every point (no rollups).</summary>
    [Benchmark(Baseline = true)]
    public long FullScan1000()
    {
        long count = 0;
        for (var b = 0; b < _grid.Count; b++)
        {
            var lo = (int)_grid.BucketStart(b);
            var hi = (int)_grid.BucketEnd(b) + 1;
            count += Aggregate.Scan(_points.Steps, _points.Values, _points.Timestamps, lo, hi).Count;
        }

        return count;
    }

    /// <summary>The sealed series as an Arrow IPC stream into Stream.Null: the HTTP endpoint's work without the network.</summary>
    [Benchmark]
    public void ArrowIpc10M() =>
        MetricStore.Server.Http.PointsEndpoint.WriteArrowAsync(Stream.Null, _engine.ReadPointsAsync(_sealed, long.MinValue, long.MaxValue, 1 << 20), MetricStore.Server.Http.PointsEndpoint.AllColumns, float32: false, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>The same with <c>columns=step,value&amp;value_type=auto</c>: the float32 check, then values narrowed to float32 on the way out.</summary>
    [Benchmark]
    public void ArrowIpc10MStepValueFloat32()
    {
        var float32 = _engine.ValuesFitFloat32Async(_sealed).AsTask().GetAwaiter().GetResult();
        MetricStore.Server.Http.PointsEndpoint.WriteArrowAsync(Stream.Null, _engine.ReadPointsAsync(_sealed, long.MinValue, long.MaxValue, 1 << 20), [MetricStore.Server.Http.PointsEndpoint.Column.Step, MetricStore.Server.Http.PointsEndpoint.Column.Value], float32, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <summary>Streams the sealed series in 1M-point slices (what Arrow and gRPC reads iterate).</summary>
    [Benchmark]
    public long ReadAll10M()
    {
        long count = 0;
        var e = _engine.ReadPointsAsync(_sealed, long.MinValue, long.MaxValue, 1 << 20).GetAsyncEnumerator();
        while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
        {
            count += e.Current.Count;
        }

        return count;
    }
}
