using BenchmarkDotNet.Attributes;
using MetricStore.Core;
using MetricStore.Storage;
using MetricStore.Storage.Segments;
using Parquet;

namespace MetricStore.Benchmarks;

/// <summary>
/// What one query-cache miss costs: decoding a 100k-point row group (a run of the bench query
/// dataset), from a file of 40 such series (a 4M-point seal, footer with 40 row groups' rollups)
/// and from a file of one; the same through a reader kept open (as the query cache does since
/// SegmentReaders); and opening the 40-series file alone (the footer parse). Through the open
/// reader, Parquet.Net's page reader (the baseline of the same run) against PointPageDecoder, which
/// SegmentReaders uses for point files, decoding into new columns and into columns reused.
/// </summary>
[MemoryDiagnoser]
public class RowGroupDecodeBenchmarks
{
    private const int Points = 100_000;
    private const int Series = 40;
    private string _directory = "";
    private string _wide = "";
    private string _single = "";
    private SegmentReaders _readers = null!;
    private FileStream _stream = null!;
    private ParquetReader _reader = null!;
    private PointPageDecoder _decoder = null!;
    private PointPageDecoder.Layout _layout = null!;
    private FooterIndex _footer = null!;
    private SeriesColumns _into = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        var random = new Random(1);
        var series = new List<(int, SeriesKey, SeriesColumns)>();
        for (var s = 0; s < Series; s++)
        {
            var columns = new SeriesColumns(Points);
            for (var i = 0; i < Points; i++)
            {
                columns.Steps[i] = i;
                columns.Values[i] = (float)((2.5 * Math.Exp(-i / 2e4)) + 0.1 + (0.02 * random.NextDouble()));
                columns.Timestamps[i] = 1_700_000_000_000 + (i / 10_000);
            }

            columns.Count = Points;
            series.Add((s, SeriesKey.Create("key", RunId.New(), "train/loss"), columns));
        }

        _wide = Path.Combine(_directory, "wide.parquet");
        _single = Path.Combine(_directory, "single.parquet");
        SegmentFile.WriteAsync(_wide, series, float32: true, CompressionMethod.Zstd, CancellationToken.None).GetAwaiter().GetResult();
        SegmentFile.WriteAsync(_single, series.Take(1).ToList(), float32: true, CompressionMethod.Zstd, CancellationToken.None).GetAwaiter().GetResult();
        _readers = new SegmentReaders(4);
        _stream = new FileStream(_wide, FileMode.Open, FileAccess.Read, FileShare.Read);
        _reader = ParquetReader.CreateAsync(_stream).GetAwaiter().GetResult();
        _decoder = new PointPageDecoder();
        _layout = PointPageDecoder.LayoutOf(_reader.Metadata!) ?? throw new InvalidOperationException("not a point file");
        _footer = FooterIndex.Of(_reader.Metadata!);
        _into = new SeriesColumns(Points);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _readers.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _decoder.Dispose();
        _reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _stream.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(Baseline = true)]
    public int DecodeRowGroupOfSingleSeriesFile() =>
        SegmentFile.ReadAsync(_single, 0, float32: true, CancellationToken.None).GetAwaiter().GetResult().Count;

    [Benchmark]
    public int DecodeRowGroupOf40SeriesFile() =>
        SegmentFile.ReadAsync(_wide, Series / 2, float32: true, CancellationToken.None).GetAwaiter().GetResult().Count;

    /// <summary>The same miss as the query cache makes it: through a reader kept open (footer parsed once).</summary>
    [Benchmark]
    public int DecodeRowGroupOf40SeriesFileOpenReader() =>
        _readers.ReadAsync(_wide, Series / 2, float32: true, CancellationToken.None).GetAwaiter().GetResult().Count;

    /// <summary>Parquet.Net's page reader through an open reader: what a miss cost before PointPageDecoder.</summary>
    [Benchmark]
    public int ParquetNetRowGroupOpenReader() =>
        SegmentFile.ReadAsync(_reader, _wide, Series / 2, float32: true, CancellationToken.None).GetAwaiter().GetResult().Count;

    [Benchmark]
    public int PointPageDecoderRowGroup() => _decoder.Read(_stream.SafeFileHandle, _footer, _layout, Series / 2).Count;

    [Benchmark]
    public int PointPageDecoderRowGroupIntoColumns() => _decoder.Read(_stream.SafeFileHandle, _footer, _layout, Series / 2, _into).Count;

    [Benchmark]
    public int OpenFooterOf40SeriesFile() => OpenAsync().GetAwaiter().GetResult();

    private async Task<int> OpenAsync()
    {
        await using var stream = new FileStream(_wide, FileMode.Open, FileAccess.Read, FileShare.Read);
        await using var reader = await ParquetReader.CreateAsync(stream);
        return reader.RowGroupCount;
    }
}
