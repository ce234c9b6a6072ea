using System.Globalization;
using MetricStore.Core;
using MetricStore.Storage.Query;
using Parquet;

namespace MetricStore.Storage.Segments;

/// <summary>
/// Writes one point file a series at a time, in row groups of at most <see cref="MaxRowGroupRows"/>
/// points. The file appears under its name only after <see cref="CompleteAsync"/>
/// (temp file, fsync, rename, directory fsync); disposing without completing deletes the temp file.
/// </summary>
/// <remarks>
/// The pages come from <see cref="PointPageEncoder"/> and the footer (Parquet's FileMetaData in the
/// Thrift compact protocol) is written here: Parquet.Net's writer allocated some 190 MB/s of
/// large-object garbage at 15M points/s of ingest. The file is the layout Parquet.Net wrote for us:
/// columns series_id (INT32, PLAIN), step (INT64, DELTA_BINARY_PACKED), value (FLOAT or DOUBLE,
/// BYTE_STREAM_SPLIT), timestamp_ms (INT64, DELTA_BINARY_PACKED), all required, one v1 data page per
/// column chunk, min/max statistics on the integer columns (DuckDB prunes row groups by them) and
/// only a null count on the values, as Parquet.Net did.
/// </remarks>
internal sealed class SegmentWriter : IAsyncDisposable
{
    private static readonly byte[] s_magic = "PAR1"u8.ToArray();
    private readonly string _path;
    private readonly string _temp;
    private readonly bool _float32;
    private readonly bool _compress;
    private readonly FileStream _stream;
    private readonly PointPageEncoder _encoder;
    private readonly List<SegmentSeries> _series = [];
    private readonly List<RowGroup> _groups = [];

    // The row group being written: slices of the series' parts, and their columns for the encoder.
    private readonly List<(SeriesColumns Part, int Offset, int Count, PartBlocks Blocks)> _slices = [];
    private readonly List<ReadOnlyMemory<long>> _steps = [];
    private readonly List<ReadOnlyMemory<double>> _values = [];
    private readonly List<ReadOnlyMemory<long>> _timestamps = [];
    private readonly SeriesColumns _block = new(1 << Rollup.BlockShift); // a rollup block that straddles two slices
    private long _position;
    private long _writebackStarted; // the file is being written back to disk up to here (FileWriteback)
    private bool _completed;
    private bool _closed;

    private SegmentWriter(string path, bool float32, bool compress, FileStream stream)
    {
        _path = path;
        _temp = path + ".tmp";
        _float32 = float32;
        _compress = compress;
        _stream = stream;
        _encoder = PointPageEncoder.Rent();
        _position = s_magic.Length;
    }

    /// <summary>A written row group: its rows, the step and timestamp ranges and its four column chunks.</summary>
    private sealed record RowGroup(int SeriesId, int Rows, long MinStep, long MaxStep, long MinTimestamp, long MaxTimestamp, PointPageEncoder.Chunk[] Chunks);

    /// <summary>
    /// Starts a point file, zstd-compressed (<see cref="CompressionMethod.Zstd"/>, what seals and
    /// compactions write) or not (<see cref="CompressionMethod.None"/>). Snappy at seal time
    /// (tiered compression, as LSM stores do) measured no clear ingest gain within this machine's
    /// noise for 10% more bytes (docs/benchmarks.md), so no other codec is written.
    /// </summary>
    public static async Task<SegmentWriter> CreateAsync(string path, bool float32, CompressionMethod compression, CancellationToken cancellationToken)
    {
        if (compression is not (CompressionMethod.Zstd or CompressionMethod.None))
        {
            throw new ArgumentOutOfRangeException(nameof(compression), compression, "point files are written with zstd or uncompressed");
        }

        var stream = new FileStream(path + ".tmp", FileMode.Create, FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 16);
        try
        {
            await stream.WriteAsync(s_magic, cancellationToken);
            return new SegmentWriter(path, float32, compression == CompressionMethod.Zstd, stream);
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

    /// <summary>
    /// The point file's columns in order, with the encoding of their pages (what
    /// <see cref="PointPageEncoder"/> writes for each); the value column is FLOAT in float32 files
    /// (<see cref="TypeOf"/>). The footer and <see cref="RawRowGroup"/>'s layout check both follow it.
    /// </summary>
    internal static readonly (string Name, Parquet.Meta.Type Type, int Encoding)[] Columns =
    [
        ("series_id", Parquet.Meta.Type.INT32, PointPageEncoder.Plain),
        ("step", Parquet.Meta.Type.INT64, PointPageEncoder.DeltaBinaryPacked),
        ("value", Parquet.Meta.Type.DOUBLE, PointPageEncoder.ByteStreamSplit),
        ("timestamp_ms", Parquet.Meta.Type.INT64, PointPageEncoder.DeltaBinaryPacked),
    ];

    /// <summary>The physical type of column <paramref name="column"/> in a float32 file or a double one.</summary>
    internal static Parquet.Meta.Type TypeOf(int column, bool float32) =>
        column == 2 && float32 ? Parquet.Meta.Type.FLOAT : Columns[column].Type;

    /// <summary>
    /// The footer key that held the rollups of every row group in base64 (see <see cref="Rollup.Serialize"/>),
    /// in files written before the tenth session; still read (<see cref="SegmentFile.ReadRollupsAsync"/>).
    /// </summary>
    public const string RollupMetadataKey = "metricstore.rollup";

    /// <summary>
    /// The footer key locating the rollups of every row group in the file's body, as "OFFSET:LENGTH"
    /// in bytes: the serialized rollups lie between the last column chunk and the footer, where
    /// Parquet readers look only where the footer points (page indexes live there too). In the
    /// footer, the rollups of a file of hundreds of millions of points were a 10 MB base64 value
    /// that every parse of the footer read twice over, as bytes and as a 20 MB string (Parquet.Net
    /// reads every key-value pair), and that the writer's footer buffer grew to hold
    /// (docs/benchmarks.md, tenth session).
    /// </summary>
    public const string RollupBlockKey = "metricstore.rollup.block";

    /// <summary>
    /// Aggregates of a part's points already known, by <see cref="Rollup.BlockSize"/>-point block from
    /// the part's start: <c>Blocks[j]</c> covers points [j × 1024, (j + 1) × 1024) for every
    /// j &lt; <see cref="Final"/>. A head chunk's fine rollup has them (its level 1).
    /// </summary>
    public readonly record struct PartBlocks(Aggregate[]? Blocks, int Final)
    {
        public static PartBlocks None => default;
    }

    /// <summary>Adds one series (sorted by step, unique steps, at least one point) as the next row groups.</summary>
    public Task AddAsync(int seriesId, SeriesColumns points, CancellationToken cancellationToken) => AddInOrderAsync(seriesId, [points], null, cancellationToken);

    /// <summary>
    /// Adds one series given as parts already in step order (each sorted with unique steps, each
    /// after the one before), in row groups of up to <see cref="MaxRowGroupRows"/> points. The
    /// pages are encoded from the parts where they are: no copy of the series, nor of a row group.
    /// A row group's rollup takes a block from <paramref name="blocks"/> (one per part, or null)
    /// wherever one covers exactly a rollup block of the row group, and scans the points elsewhere.
    /// </summary>
    public async Task AddInOrderAsync(int seriesId, IReadOnlyList<SeriesColumns> parts, IReadOnlyList<PartBlocks>? blocks, CancellationToken cancellationToken)
    {
        _slices.Clear();
        var rows = 0;
        for (var p = 0; p < parts.Count; p++)
        {
            var part = parts[p];
            for (var offset = 0; offset < part.Count;)
            {
                var take = Math.Min(part.Count - offset, MaxRowGroupRows - rows);
                _slices.Add((part, offset, take, blocks?[p] ?? PartBlocks.None));
                rows += take;
                offset += take;
                if (rows == MaxRowGroupRows)
                {
                    await AddRowGroupAsync(seriesId, rows, cancellationToken);
                    rows = 0;
                }
            }
        }

        if (rows > 0)
        {
            await AddRowGroupAsync(seriesId, rows, cancellationToken);
        }
    }

    /// <summary>Writes the points of <see cref="_slices"/>, <paramref name="n"/> in all, as the next row group, and clears them.</summary>
    private async Task AddRowGroupAsync(int seriesId, int n, CancellationToken cancellationToken)
    {
        _steps.Clear();
        _values.Clear();
        _timestamps.Clear();
        long minTimestamp = long.MaxValue, maxTimestamp = long.MinValue;
        foreach (var (part, offset, count, _) in _slices)
        {
            _steps.Add(part.Steps.AsMemory(offset, count));
            _values.Add(part.Values.AsMemory(offset, count));
            _timestamps.Add(part.Timestamps.AsMemory(offset, count));
            var (min, max) = ColumnKernels.MinMax(part.Timestamps.AsSpan(offset, count));
            minTimestamp = Math.Min(minTimestamp, min);
            maxTimestamp = Math.Max(maxTimestamp, max);
        }

        var minStep = _steps[0].Span[0];
        var maxStep = _steps[^1].Span[^1];
        var chunks = new PointPageEncoder.Chunk[4];
        chunks[0] = await Next(_encoder.WriteConstantInt32Async(_stream, _position, seriesId, n, _compress, cancellationToken));
        chunks[1] = await Next(_encoder.WriteInt64Async(_stream, _position, _steps, n, _compress, cancellationToken));
        chunks[2] = await Next(_encoder.WriteValuesAsync(_stream, _position, _values, n, _float32, _compress, cancellationToken));
        chunks[3] = await Next(_encoder.WriteInt64Async(_stream, _position, _timestamps, n, _compress, cancellationToken));
        var rollup = CoarseRollup(n);
        _slices.Clear();
        _groups.Add(new RowGroup(seriesId, n, minStep, maxStep, minTimestamp, maxTimestamp, chunks));
        _series.Add(new SegmentSeries { SeriesId = seriesId, RowGroup = _series.Count, Rows = n, MinStep = minStep, MaxStep = maxStep, Rollup = rollup });
        await StartWritebackAsync(cancellationToken);
    }

    /// <summary>
    /// The <see cref="Rollup.Coarse"/> rollup of the row group in <see cref="_slices"/>. A block is
    /// taken from its part's known blocks when one covers exactly its points (a seal's head chunks:
    /// then the seal scans no point for the rollup; the block's sum is the sum of its sixteen fine
    /// blocks' sums, which can differ from one scan in the last bits, as any combination of blocks
    /// does). Otherwise it is scanned where it lies, or from a copy when it straddles two slices,
    /// the same <see cref="Aggregate.Scan"/> of the same points as over one array.
    /// </summary>
    private Rollup CoarseRollup(int n)
    {
        var shape = Rollup.Coarse;
        var size = 1 << shape.BlockShift;
        var blocks = new Aggregate[(n + size - 1) >> shape.BlockShift];
        var slice = 0;
        var sliceStart = 0; // the row index of the first point of _slices[slice]
        for (var k = 0; k < blocks.Length; k++)
        {
            var from = k << shape.BlockShift;
            var to = Math.Min(n, from + size);
            while (from >= sliceStart + _slices[slice].Count)
            {
                sliceStart += _slices[slice].Count;
                slice++;
            }

            var (part, offset, count, known) = _slices[slice];
            if (to <= sliceStart + count)
            {
                var at = offset + from - sliceStart;
                var j = at >> shape.BlockShift;
                blocks[k] = to - from == size && (at & (size - 1)) == 0 && j < known.Final
                    ? known.Blocks![j]
                    : Aggregate.Scan(part.Steps, part.Values, part.Timestamps, at, at + (to - from));
                continue;
            }

            _block.Count = 0;
            for (int s = slice, local = from - sliceStart; _block.Count < to - from; s++, local = 0)
            {
                var (p, o, c, _) = _slices[s];
                var take = Math.Min(to - from - _block.Count, c - local);
                Array.Copy(p.Steps, o + local, _block.Steps, _block.Count, take);
                Array.Copy(p.Values, o + local, _block.Values, _block.Count, take);
                Array.Copy(p.Timestamps, o + local, _block.Timestamps, _block.Count, take);
                _block.Count += take;
            }

            blocks[k] = Aggregate.Scan(_block.Steps, _block.Values, _block.Timestamps, 0, _block.Count);
        }

        return Rollup.FromBlocks(blocks, blocks.Length, n, shape);
    }

    /// <summary>
    /// Adds a row group of another point file as the next row group, its bytes copied unchanged:
    /// compaction's path for a row group that needs no merge. The caller vouches that it is one
    /// series' points from <paramref name="minStep"/> to <paramref name="maxStep"/> with
    /// <paramref name="rollup"/> as its rollup (the source's footer and manifest say so).
    /// </summary>
    public async Task AddRawAsync(int seriesId, long minStep, long maxStep, Rollup rollup, RawRowGroup raw, CancellationToken cancellationToken)
    {
        if (rollup.Count != raw.Rows)
        {
            throw new ArgumentException($"a rollup of {rollup.Count} points for a row group of {raw.Rows}", nameof(rollup));
        }

        var chunks = new PointPageEncoder.Chunk[raw.Chunks.Length];
        for (var c = 0; c < chunks.Length; c++)
        {
            chunks[c] = raw.Chunks[c] with { Offset = _position + raw.Chunks[c].Offset };
        }

        await _stream.WriteAsync(raw.Bytes.AsMemory(0, raw.Length), cancellationToken);
        _position += raw.Length;
        _groups.Add(new RowGroup(seriesId, raw.Rows, minStep, maxStep, raw.MinTimestamp, raw.MaxTimestamp, chunks));
        _series.Add(new SegmentSeries { SeriesId = seriesId, RowGroup = _series.Count, Rows = raw.Rows, MinStep = minStep, MaxStep = maxStep, Rollup = rollup });
        await StartWritebackAsync(cancellationToken);
    }

    /// <summary>Whether this file stores values as float32.</summary>
    public bool Float32 => _float32;

    /// <summary>Whether this file's pages are zstd-compressed.</summary>
    public bool Zstd => _compress;

    /// <summary>Bytes whose writeback this writer started before its final fsync (0 where the call is not available).</summary>
    internal long WritebackBytes { get; private set; }

    /// <summary>Every <see cref="FileWriteback.BytesPerSync"/> bytes, starts writing back what was written since the last time, so a large file is never mostly dirty when it is fsynced.</summary>
    private async ValueTask StartWritebackAsync(CancellationToken cancellationToken)
    {
        if (_position - _writebackStarted < FileWriteback.BytesPerSync)
        {
            return;
        }

        await _stream.FlushAsync(cancellationToken); // the FileStream's own buffer to the kernel
        if (FileWriteback.Start(_stream.SafeFileHandle, _writebackStarted, _position - _writebackStarted))
        {
            WritebackBytes += _position - _writebackStarted;
        }

        _writebackStarted = _position;
    }

    /// <summary>Moves the file position past a chunk just written.</summary>
    private async ValueTask<PointPageEncoder.Chunk> Next(ValueTask<PointPageEncoder.Chunk> write)
    {
        var chunk = await write;
        _position += chunk.CompressedSize;
        return chunk;
    }

    /// <summary>Finishes the file durably under its final name.</summary>
    public async Task<SegmentInfo> CompleteAsync(CancellationToken cancellationToken)
    {
        var rollups = Rollup.Serialize(_series.Select(s => (s.RowGroup, s.Rollup!)).ToList());
        var rollupOffset = _position;
        await _stream.WriteAsync(rollups, cancellationToken);
        _position += rollups.Length;
        var footer = _encoder.Footer;
        footer.Reset();
        WriteFooter(footer, rollupOffset, rollups.Length);
        var tail = new byte[8];
        BitConverter.TryWriteBytes(tail, footer.Length);
        s_magic.CopyTo(tail, 4);
        await _stream.WriteAsync(footer.Written, cancellationToken);
        await _stream.WriteAsync(tail, cancellationToken);
        await _stream.FlushAsync(cancellationToken);
        _stream.Flush(flushToDisk: true);
        await CloseAsync();
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

    /// <summary>FileMetaData (parquet.thrift): version, schema, rows, row groups, where the rollups are as key-value metadata, created_by.</summary>
    private void WriteFooter(ThriftCompactWriter w, long rollupOffset, int rollupLength)
    {
        const int Int32 = (int)Parquet.Meta.Type.INT32;
        const int Required = (int)Parquet.Meta.FieldRepetitionType.REQUIRED, Zstd = (int)Parquet.Meta.CompressionCodec.ZSTD, Uncompressed = (int)Parquet.Meta.CompressionCodec.UNCOMPRESSED;
        var columns = Columns.Select((c, i) => (c.Name, Type: (int)TypeOf(i, _float32))).ToArray();
        w.WriteI32(1, 1); // version
        w.BeginList(2, ThriftCompactWriter.Struct, 1 + columns.Length); // schema: the root, then the leaves
        w.BeginListStruct();
        w.WriteString(4, "schema");
        w.WriteI32(5, columns.Length); // num_children
        w.EndStruct();
        foreach (var (name, type) in columns)
        {
            w.BeginListStruct();
            w.WriteI32(1, type);
            w.WriteI32(3, Required); // repetition_type
            w.WriteString(4, name);
            w.EndStruct();
        }

        w.WriteI64(3, _groups.Sum(g => (long)g.Rows)); // num_rows
        w.BeginList(4, ThriftCompactWriter.Struct, _groups.Count); // row_groups
        Span<byte> statistic = stackalloc byte[8];
        foreach (var group in _groups)
        {
            w.BeginListStruct();
            w.BeginList(1, ThriftCompactWriter.Struct, columns.Length); // columns
            for (var c = 0; c < columns.Length; c++)
            {
                var chunk = group.Chunks[c];
                w.BeginListStruct();
                w.WriteI64(2, chunk.Offset); // file_offset
                w.BeginStruct(3); // meta_data
                w.WriteI32(1, columns[c].Type);
                w.BeginList(2, ThriftCompactWriter.I32, 2); // encodings
                w.WriteI32Value(chunk.Encoding);
                w.WriteI32Value(PointPageEncoder.Rle);
                w.BeginList(3, ThriftCompactWriter.Binary, 1); // path_in_schema
                w.WriteStringValue(columns[c].Name);
                w.WriteI32(4, _compress ? Zstd : Uncompressed); // codec
                w.WriteI64(5, chunk.Values); // num_values
                w.WriteI64(6, chunk.UncompressedSize); // total_uncompressed_size (page headers included)
                w.WriteI64(7, chunk.CompressedSize); // total_compressed_size
                w.WriteI64(9, chunk.Offset); // data_page_offset
                w.BeginStruct(12); // statistics
                (long Min, long Max)? range = c switch
                {
                    0 => (group.SeriesId, group.SeriesId),
                    1 => (group.MinStep, group.MaxStep),
                    3 => (group.MinTimestamp, group.MaxTimestamp),
                    _ => null, // values: a null count only (NaN has no order)
                };
                var width = columns[c].Type == Int32 ? 4 : 8;
                if (range is { } r)
                {
                    BitConverter.TryWriteBytes(statistic, r.Max);
                    w.WriteBinary(1, statistic[..width]); // max (deprecated, still read by older readers)
                    BitConverter.TryWriteBytes(statistic, r.Min);
                    w.WriteBinary(2, statistic[..width]); // min
                }

                w.WriteI64(3, 0); // null_count
                if (range is { } v)
                {
                    BitConverter.TryWriteBytes(statistic, v.Max);
                    w.WriteBinary(5, statistic[..width]); // max_value
                    BitConverter.TryWriteBytes(statistic, v.Min);
                    w.WriteBinary(6, statistic[..width]); // min_value
                }

                w.EndStruct(); // statistics
                w.EndStruct(); // meta_data
                w.EndStruct(); // column chunk
            }

            w.WriteI64(2, group.Chunks.Sum(c => c.UncompressedSize)); // total_byte_size
            w.WriteI64(3, group.Rows); // num_rows
            w.WriteI64(5, group.Chunks[0].Offset); // file_offset
            w.WriteI64(6, group.Chunks.Sum(c => c.CompressedSize)); // total_compressed_size
            w.EndStruct();
        }

        w.BeginList(5, ThriftCompactWriter.Struct, 1); // key_value_metadata
        w.BeginListStruct();
        w.WriteString(1, RollupBlockKey);
        w.WriteString(2, string.Create(CultureInfo.InvariantCulture, $"{rollupOffset}:{rollupLength}"));
        w.EndStruct();
        w.WriteString(6, RawRowGroup.CreatedBy);
        w.End();
    }

    public async ValueTask DisposeAsync()
    {
        if (_completed)
        {
            return;
        }

        await CloseAsync();
        File.Delete(_temp);
    }

    /// <summary>Closes the file and gives the encoder back, once.</summary>
    private async ValueTask CloseAsync()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        await _stream.DisposeAsync();
        PointPageEncoder.Return(_encoder);
    }
}
