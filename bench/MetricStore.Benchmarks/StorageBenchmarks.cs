using BenchmarkDotNet.Attributes;
using MetricStore.Core;
using MetricStore.Storage;
using MetricStore.Storage.Segments;

namespace MetricStore.Benchmarks;

/// <summary>WAL replay at open and segment encode, on real files in a temp directory.</summary>
[MemoryDiagnoser]
public class StorageBenchmarks
{
    private const int PointsPerRequest = 10_000;
    private const int Requests = 400; // 4M points
    private string _directory = "";
    private SeriesKey _key = null!;
    private SeriesColumns _columns = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        _key = SeriesKey.Create("key", RunId.New(), "train/loss");
        var options = Options();
        var engine = StorageEngine.Open(options);
        var random = new Random(1);
        for (ulong seq = 1; seq <= Requests; seq++)
        {
            var steps = new long[PointsPerRequest];
            var values = new double[PointsPerRequest];
            for (var i = 0; i < PointsPerRequest; i++)
            {
                steps[i] = ((long)(seq - 1) * PointsPerRequest) + i;
                values[i] = (float)(2.5 * Math.Exp(-steps[i] / 1e6) + (0.02 * random.NextDouble()));
            }

            engine.WriteAsync(new WriteBatch
            {
                WriterId = "bench",
                Seq = seq,
                Series = [new SeriesPoints { Key = _key, Count = PointsPerRequest, Steps = steps, Values = values, Timestamps = [1_700_000_000_000], SharedTimestamp = true, Float32Origin = true }],
            }).AsTask().GetAwaiter().GetResult();
        }

        _columns = engine.ReadSeriesAsync(_key).AsTask().GetAwaiter().GetResult()!;
        engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_directory, recursive: true);

    private StorageOptions Options() => new() { DataDirectory = _directory, SealThresholdPoints = long.MaxValue };

    /// <summary>Open = WAL replay of 4M points (400 records) + close. Points/s = 4M / mean.</summary>
    [Benchmark(OperationsPerInvoke = 1)]
    public long ReplayWal4MPoints()
    {
        var engine = StorageEngine.Open(Options());
        var points = engine.Recovery.Points;
        engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return points;
    }

    /// <summary>Seal encode: 4M float32 points of one series into a Parquet file (zstd, hints). Points/s = 4M / mean.</summary>
    [Benchmark]
    public long EncodeSegment4MPoints()
    {
        var path = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".parquet");
        var info = SegmentFile.WriteAsync(path, [(0, _key, _columns)], float32: true, Parquet.CompressionMethod.Zstd, CancellationToken.None).GetAwaiter().GetResult();
        File.Delete(path);
        return info.Bytes;
    }
}
