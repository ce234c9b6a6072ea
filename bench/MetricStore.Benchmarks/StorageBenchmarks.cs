using BenchmarkDotNet.Attributes;
using MetricStore.Core;
using MetricStore.Storage;
using MetricStore.Storage.Query;
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
    private List<SeriesColumns> _chunks = null!;
    private List<SegmentWriter.PartBlocks> _blocks = null!;

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
        _chunks = [];
        for (var at = 0; at < _columns.Count; at += 65_536)
        {
            var n = Math.Min(65_536, _columns.Count - at);
            var chunk = new SeriesColumns(65_536) { Count = n };
            Array.Copy(_columns.Steps, at, chunk.Steps, 0, n);
            Array.Copy(_columns.Values, at, chunk.Values, 0, n);
            Array.Copy(_columns.Timestamps, at, chunk.Timestamps, 0, n);
            _chunks.Add(chunk);
        }

        // What a head chunk's fine rollup holds for its whole 1024-point blocks.
        _blocks = _chunks.Select(c => new SegmentWriter.PartBlocks(
            Enumerable.Range(0, c.Count / Rollup.BlockSize).Select(j => Aggregate.Scan(c.Steps, c.Values, c.Timestamps, j * Rollup.BlockSize, (j + 1) * Rollup.BlockSize)).ToArray(),
            c.Count / Rollup.BlockSize)).ToList();

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

    /// <summary>
    /// The seal's path: the same 4M points as 64k-point head chunks with the aggregates of their
    /// whole 1024-point blocks (a head chunk's fine rollup has them), written as one series in row
    /// groups of up to 1M points. Points/s = 4M / mean.
    /// </summary>
    [Benchmark]
    public long EncodeSegmentFromChunks4MPoints()
    {
        var path = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".parquet");
        var bytes = WriteChunksAsync(path).GetAwaiter().GetResult();
        File.Delete(path);
        return bytes;
    }

    private async Task<long> WriteChunksAsync(string path)
    {
        await using var writer = await SegmentWriter.CreateAsync(path, float32: true, Parquet.CompressionMethod.Zstd, CancellationToken.None);
        await writer.AddInOrderAsync(0, _chunks, _blocks, CancellationToken.None);
        return (await writer.CompleteAsync(CancellationToken.None)).Bytes;
    }
}
