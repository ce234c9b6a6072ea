using System.IO.Compression;
using MetricStore.Core;
using MetricStore.Storage.Query;
using Parquet;
using Parquet.Schema;

namespace MetricStore.Storage.Segments;

/// <summary>
/// Writes one point file a series at a time, in row groups of at most <see cref="MaxRowGroupRows"/>
/// points. The file appears under its name only after <see cref="CompleteAsync"/>
/// (temp file, fsync, rename, directory fsync); disposing without completing deletes the temp file.
/// </summary>
internal sealed class SegmentWriter : IAsyncDisposable
{
    private readonly string _path;
    private readonly string _temp;
    private readonly bool _float32;
    private readonly FileStream _stream;
    private readonly ParquetWriter _writer;
    private readonly Fields _fields;
    private readonly List<SegmentSeries> _series = [];
    private int[] _ids = [];       // the series_id column, reused across row groups (large-object-heap churn otherwise)
    private float[] _floats = [];  // the float32 value column, reused likewise
    private bool _completed;

    private SegmentWriter(string path, bool float32, FileStream stream, ParquetWriter writer, Fields fields)
    {
        _path = path;
        _temp = path + ".tmp";
        _float32 = float32;
        _stream = stream;
        _writer = writer;
        _fields = fields;
    }

    /// <summary>The columns of one file's schema (Parquet.Net binds a field to the schema it is part of).</summary>
    private sealed class Fields
    {
        public DataField<int> SeriesId { get; } = new("series_id");

        public DataField<long> Step { get; } = new("step");

        public DataField<long> Timestamp { get; } = new("timestamp_ms");

        public DataField<float> Float { get; } = new("value");

        public DataField<double> Double { get; } = new("value");
    }

    /// <summary>
    /// Starts a point file with the given codec. Seals and compactions both use zstd today: snappy at
    /// seal time (tiered compression, as LSM stores do) measured no clear ingest gain within this
    /// machine's noise for 10% more bytes (docs/benchmarks.md).
    /// </summary>
    public static async Task<SegmentWriter> CreateAsync(string path, bool float32, CompressionMethod compression, CancellationToken cancellationToken)
    {
        var stream = new FileStream(path + ".tmp", FileMode.Create, FileAccess.ReadWrite, FileShare.None);
        try
        {
            var fields = new Fields();
            var value = float32 ? (DataField)fields.Float : fields.Double;
            var schema = new ParquetSchema(fields.SeriesId, fields.Step, value, fields.Timestamp);
            var options = new ParquetOptions { CompressionMethod = compression, CompressionLevel = CompressionLevel.Fastest };
            // series_id stays PLAIN: it is constant within a row group, so zstd takes its 4 bytes a
            // row down to a few hundred bytes a row group either way, and Parquet.Net's delta encoder
            // was the slower path (EncodeSegment4MPoints in docs/benchmarks.md).
            options.ColumnEncodingHints[fields.Step.Name] = EncodingHint.DeltaBinaryPacked;
            options.ColumnEncodingHints[fields.Timestamp.Name] = EncodingHint.DeltaBinaryPacked;
            options.ColumnEncodingHints[value.Name] = EncodingHint.ByteSplitStream;
            var writer = await ParquetWriter.CreateAsync(schema, stream, options, cancellationToken: cancellationToken);
            return new SegmentWriter(path, float32, stream, writer, fields);
        }
        catch
        {
            await stream.DisposeAsync();
            File.Delete(path + ".tmp");
            throw;
        }
    }

    /// <summary>
    /// Rows per row group at most: a series longer than this spans several row groups, so a reader
    /// decodes (and caches) at most this many points at a time and prunes by step range within a series.
    /// </summary>
    public const int MaxRowGroupRows = 1 << 20;

    /// <summary>The footer key holding the rollups of every row group (see <see cref="Rollup.Serialize"/>).</summary>
    public const string RollupMetadataKey = "metricstore.rollup";

    /// <summary>Adds one series (sorted by step, unique steps, at least one point) as the next row groups.</summary>
    public async Task AddAsync(int seriesId, SeriesColumns points, CancellationToken cancellationToken)
    {
        for (var offset = 0; offset < points.Count; offset += MaxRowGroupRows)
        {
            await AddRowGroupAsync(seriesId, points, offset, Math.Min(MaxRowGroupRows, points.Count - offset), cancellationToken);
        }
    }

    /// <summary>
    /// Adds one series given as parts already in step order (each sorted with unique steps, each
    /// after the one before), copied into row groups through <paramref name="staging"/>, which is
    /// reused and grown up to <see cref="MaxRowGroupRows"/>: no array the size of the series.
    /// </summary>
    /// <returns>The staging buffer to pass next time (grown when it was too small).</returns>
    public async Task<SeriesColumns> AddInOrderAsync(int seriesId, IReadOnlyList<SeriesColumns> parts, SeriesColumns staging, CancellationToken cancellationToken)
    {
        long total = 0;
        foreach (var part in parts)
        {
            total += part.Count;
        }

        if (staging.Steps.Length < Math.Min(total, MaxRowGroupRows))
        {
            staging = new SeriesColumns((int)Math.Min(total, MaxRowGroupRows));
        }

        staging.Count = 0;
        foreach (var part in parts)
        {
            for (var offset = 0; offset < part.Count;)
            {
                var take = Math.Min(part.Count - offset, staging.Steps.Length - staging.Count);
                Array.Copy(part.Steps, offset, staging.Steps, staging.Count, take);
                Array.Copy(part.Values, offset, staging.Values, staging.Count, take);
                Array.Copy(part.Timestamps, offset, staging.Timestamps, staging.Count, take);
                staging.Count += take;
                offset += take;
                if (staging.Count == staging.Steps.Length)
                {
                    await AddRowGroupAsync(seriesId, staging, 0, staging.Count, cancellationToken);
                    staging.Count = 0;
                }
            }
        }

        if (staging.Count > 0)
        {
            await AddRowGroupAsync(seriesId, staging, 0, staging.Count, cancellationToken);
            staging.Count = 0;
        }

        return staging;
    }

    private async Task AddRowGroupAsync(int seriesId, SeriesColumns points, int offset, int n, CancellationToken cancellationToken)
    {
        using var group = _writer.CreateRowGroup();
        if (_ids.Length < n)
        {
            _ids = new int[n];
        }

        Array.Fill(_ids, seriesId, 0, n);
        await group.WriteAsync(_fields.SeriesId, new ReadOnlyMemory<int>(_ids, 0, n), cancellationToken: cancellationToken);
        await group.WriteAsync(_fields.Step, new ReadOnlyMemory<long>(points.Steps, offset, n), cancellationToken: cancellationToken);
        if (_float32)
        {
            if (_floats.Length < n)
            {
                _floats = new float[n];
            }

            for (var i = 0; i < n; i++)
            {
                _floats[i] = (float)points.Values[offset + i];
            }

            await group.WriteAsync(_fields.Float, new ReadOnlyMemory<float>(_floats, 0, n), cancellationToken: cancellationToken);
        }
        else
        {
            await group.WriteAsync(_fields.Double, new ReadOnlyMemory<double>(points.Values, offset, n), cancellationToken: cancellationToken);
        }

        await group.WriteAsync(_fields.Timestamp, new ReadOnlyMemory<long>(points.Timestamps, offset, n), cancellationToken: cancellationToken);
        var rollup = Rollup.Build(points.Steps, points.Values, points.Timestamps, offset, n, Rollup.Coarse);
        _series.Add(new SegmentSeries { SeriesId = seriesId, RowGroup = _series.Count, Rows = n, MinStep = points.Steps[offset], MaxStep = points.Steps[offset + n - 1], Rollup = rollup });
    }

    /// <summary>Finishes the file durably under its final name.</summary>
    public async Task<SegmentInfo> CompleteAsync(CancellationToken cancellationToken)
    {
        _writer.CustomMetadata = new Dictionary<string, string>
        {
            [RollupMetadataKey] = Convert.ToBase64String(Rollup.Serialize(_series.Select(s => (s.RowGroup, s.Rollup!)).ToList())),
        };
        await _writer.DisposeAsync();
        await _stream.FlushAsync(cancellationToken);
        _stream.Flush(flushToDisk: true);
        await _stream.DisposeAsync();
        File.Move(_temp, _path, overwrite: false);
        DirectorySync.Sync(Path.GetDirectoryName(_path)!);
        _completed = true;
        return new SegmentInfo
        {
            File = Path.GetFileName(_path),
            ValueType = _float32 ? "float" : "double",
            Series = _series,
            Rows = _series.Sum(s => s.Rows),
            Bytes = new FileInfo(_path).Length,
        };
    }

    public async ValueTask DisposeAsync()
    {
        if (_completed)
        {
            return;
        }

        await _writer.DisposeAsync();
        await _stream.DisposeAsync();
        File.Delete(_temp);
    }
}
