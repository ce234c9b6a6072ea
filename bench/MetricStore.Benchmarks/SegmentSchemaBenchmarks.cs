using System.IO.Compression;
using BenchmarkDotNet.Attributes;
using MetricStore.Core;
using MetricStore.Storage;
using MetricStore.Storage.Segments;
using Parquet;
using Parquet.Schema;

namespace MetricStore.Benchmarks;

/// <summary>
/// Why segments are a star schema: writing 1M float32 points of one series as the shipped point file
/// (int series_id) against the rejected layout with run_id, metric and labels repeated on every row,
/// each with zstd and uncompressed (point files are written by our own encoder since 2026-11-28,
/// which writes those two; the snappy rows in docs/benchmarks.md came from Parquet.Net's writer).
/// Bytes per point are printed in the setup output.
/// </summary>
[MemoryDiagnoser]
public class SegmentSchemaBenchmarks
{
    private const int Points = 1_000_000;
    private string _directory = "";
    private SeriesKey _key = null!;
    private SeriesColumns _columns = null!;

    [Params(CompressionMethod.Zstd, CompressionMethod.None)]
    public CompressionMethod Codec { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        _key = SeriesKey.Create("key", RunId.New(), "train/loss", [new("rank", "0")]);
        var engine = StorageEngine.Open(new StorageOptions { DataDirectory = _directory, SealThresholdPoints = long.MaxValue });
        var random = new Random(1);
        var steps = new long[Points];
        var values = new double[Points];
        for (var i = 0; i < Points; i++)
        {
            steps[i] = i;
            values[i] = (float)((2.5 * Math.Exp(-i / 2e5)) + 0.1 + (0.02 * (random.NextDouble() - 0.5)));
        }

        engine.WriteAsync(new WriteBatch
        {
            WriterId = "bench",
            Seq = 1,
            Series = [new SeriesPoints { Key = _key, Count = Points, Steps = steps, Values = values, Timestamps = [1_700_000_000_000], SharedTimestamp = true, Float32Origin = true }],
        }).AsTask().GetAwaiter().GetResult();
        _columns = engine.ReadSeriesAsync(_key).AsTask().GetAwaiter().GetResult()!;
        engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Console.WriteLine($"// bytes/point {Codec}: star schema {StarSchema() / (double)Points:F3}, string columns {StringColumns() / (double)Points:F3}");
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_directory, recursive: true);

    /// <summary>The shipped layout (SegmentFile: series_id, step, value, timestamp_ms).</summary>
    [Benchmark(Baseline = true)]
    public long StarSchema()
    {
        var path = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".parquet");
        var info = SegmentFile.WriteAsync(path, [(0, _key, _columns)], float32: true, Codec, CancellationToken.None).GetAwaiter().GetResult();
        File.Delete(path);
        return info.Bytes;
    }

    /// <summary>The rejected layout: the same columns plus run_id, metric and labels on every row.</summary>
    [Benchmark]
    public long StringColumns()
    {
        var fields = new DataField[]
        {
            new DataField<string>("run_id"), new DataField<string>("metric"), new DataField<string>("labels"),
            new DataField<long>("step"), new DataField<float>("value"), new DataField<long>("timestamp_ms"),
        };
        var options = new ParquetOptions { CompressionMethod = Codec, CompressionLevel = CompressionLevel.Fastest };
        options.ColumnEncodingHints["step"] = EncodingHint.DeltaBinaryPacked;
        options.ColumnEncodingHints["timestamp_ms"] = EncodingHint.DeltaBinaryPacked;
        options.ColumnEncodingHints["value"] = EncodingHint.ByteSplitStream;
        using var stream = new MemoryStream();
        var writer = ParquetWriter.CreateAsync(new ParquetSchema(fields), stream, options).GetAwaiter().GetResult();
        try
        {
            using var group = writer.CreateRowGroup();
            group.WriteAsync((DataField<string>)fields[0], Repeat(_key.RunId)).GetAwaiter().GetResult();
            group.WriteAsync((DataField<string>)fields[1], Repeat(_key.Metric)).GetAwaiter().GetResult();
            group.WriteAsync((DataField<string>)fields[2], Repeat(SegmentFile.LabelsText(_key))).GetAwaiter().GetResult();
            group.WriteAsync((DataField<long>)fields[3], new ReadOnlyMemory<long>(_columns.Steps, 0, Points)).GetAwaiter().GetResult();
            var floats = new float[Points];
            for (var i = 0; i < Points; i++)
            {
                floats[i] = (float)_columns.Values[i];
            }

            group.WriteAsync((DataField<float>)fields[4], new ReadOnlyMemory<float>(floats)).GetAwaiter().GetResult();
            group.WriteAsync((DataField<long>)fields[5], new ReadOnlyMemory<long>(_columns.Timestamps, 0, Points)).GetAwaiter().GetResult();
        }
        finally
        {
            writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        return stream.Length;
    }

    private static string[] Repeat(string value)
    {
        var array = new string[Points];
        Array.Fill(array, value);
        return array;
    }
}
