using Parquet;

namespace MetricStore.Storage.Segments;

/// <summary>
/// Open Parquet readers of point files, kept between row-group reads (query-cache misses and
/// compaction's inputs, which read every row group of a file in turn). Opening a file parses its
/// footer, which carries the rollups of every row group: for a 4M-point seal of 40 series that is
/// 1 MB allocated and a quarter of the time of decoding one 100k-point row group
/// (RowGroupDecodeBenchmarks). A reader is lent to one decode at a time (its stream has one
/// position); idle readers are kept, most recently used last, up to a bound. Files are immutable
/// and their names never reused, so a kept reader never reads stale data. A file compaction removed
/// is forgotten, so no deleted file stays open (and holds its disk space).
/// </summary>
/// <remarks>
/// The parsed footer of each live file is kept apart from the readers (without its rollups), so a
/// reader opened again after its idle one was evicted, or a second reader of a file two reads use
/// at once, parses nothing: it is a file handle and the shared footer. Parsing the footer of a
/// 110M-point file (24 MB, nearly all of it base64 rollups) allocated about 190 MB of large
/// transient arrays and strings, and under a dashboard plus ingest that happened every few seconds
/// as new files pushed that file's idle readers out (docs/benchmarks.md, ninth session).
/// </remarks>
internal sealed class SegmentReaders(int capacity) : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Lease> _idle = new();
    private readonly Stack<PointPageDecoder> _decoders = new();
    private readonly Dictionary<string, Footer> _footers = []; // by path, live files only
    private bool _disposed;
    private long _opened;
    private long _decoded;

    /// <summary>
    /// Decoders kept between reads, each with its scratch buffers (up to a column chunk and a page
    /// of the largest row group read: 1M points, 8-16 MB). Decodes run on the thread pool, so more
    /// than one per core rarely runs at once; a decoder beyond these is dropped after its read.
    /// </summary>
    private static readonly int s_decodersKept = Environment.ProcessorCount;

    /// <summary>Footers parsed since start (for tests).</summary>
    public long Opened => Interlocked.Read(ref _opened);

    /// <summary>Row groups read by <see cref="PointPageDecoder"/> rather than Parquet.Net (for tests).</summary>
    public long Decoded => Interlocked.Read(ref _decoded);

    /// <summary>
    /// One row group's points through a reader of the file kept open: decoded by
    /// <see cref="PointPageDecoder"/> when the file has MetricStore's point layout, else by
    /// Parquet.Net (<see cref="SegmentFile.ReadAsync(ParquetReader, string, int, bool, CancellationToken, SeriesColumns?)"/>).
    /// A reader whose read failed is closed, not lent again.
    /// </summary>
    public async Task<SeriesColumns> ReadAsync(string path, int rowGroup, bool float32, CancellationToken cancellationToken, SeriesColumns? into = null)
    {
        var lease = await RentAsync(path, cancellationToken);
        SeriesColumns points;
        try
        {
            points = Decode(lease, rowGroup, float32, into) ?? await SegmentFile.ReadAsync(await ReaderOfAsync(lease, cancellationToken), path, rowGroup, float32, cancellationToken, into);
        }
        catch
        {
            await lease.CloseAsync();
            throw;
        }

        await ReturnAsync(lease);
        return points;
    }

    /// <summary>
    /// One row group as its four column chunks' bytes, for compaction to copy without decoding
    /// (<see cref="SegmentWriter.AddRawAsync"/>); null unless the file is exactly what our writer
    /// writes with these settings: created by MetricStore, columns series_id, step, value (float32
    /// or not as asked), timestamp_ms in that order, the codec asked for, no dictionary page, the
    /// chunks back to back, timestamp statistics present. <paramref name="buffer"/> receives the
    /// bytes (grown when too small; the result holds the one used).
    /// </summary>
    public async Task<RawRowGroup?> ReadRawAsync(string path, int rowGroup, bool float32, bool zstd, byte[] buffer, CancellationToken cancellationToken)
    {
        var lease = await RentAsync(path, cancellationToken);
        try
        {
            var raw = RawRowGroup.Read(lease.Stream.SafeFileHandle, lease.Footer.Index, rowGroup, float32, zstd, buffer);
            await ReturnAsync(lease);
            return raw;
        }
        catch (Exception e)
        {
            await lease.CloseAsync();
            if (e is InvalidDataException)
            {
                throw new InvalidDataException($"segment {lease.Path}, row group {rowGroup}: {e.Message}", e);
            }

            throw;
        }
    }

    /// <summary>The row group through <see cref="PointPageDecoder"/>, or null when its layout is one only Parquet.Net reads.</summary>
    private SeriesColumns? Decode(Lease lease, int rowGroup, bool float32, SeriesColumns? into)
    {
        if (lease.Footer.Layout is not { } layout || layout.Float32 != float32)
        {
            return null;
        }

        PointPageDecoder? decoder;
        lock (_lock)
        {
            _decoders.TryPop(out decoder);
        }

        decoder ??= new PointPageDecoder();
        try
        {
            var points = decoder.Read(lease.Stream.SafeFileHandle, lease.Footer.Index!, layout, rowGroup, into);
            Interlocked.Increment(ref _decoded);
            return points;
        }
        catch (PointPageDecoder.UnsupportedLayoutException)
        {
            return null;
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"segment {lease.Path}, row group {rowGroup}: {e.Message}", e);
        }
        finally
        {
            lock (_lock)
            {
                if (!_disposed && _decoders.Count < s_decodersKept)
                {
                    _decoders.Push(decoder);
                    decoder = null;
                }
            }

            decoder?.Dispose();
        }
    }

    /// <summary>A reader of the file, lent until <see cref="ReturnAsync"/>: an idle one, else a new handle over the kept footer, else a parse.</summary>
    private async Task<Lease> RentAsync(string path, CancellationToken cancellationToken)
    {
        Footer? footer;
        lock (_lock)
        {
            for (var node = _idle.Last; node is not null; node = node.Previous)
            {
                if (node.Value.Path == path)
                {
                    _idle.Remove(node);
                    return node.Value;
                }
            }

            _footers.TryGetValue(path, out footer);
        }

        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            if (footer is not null)
            {
                return new Lease(path, stream, footer);
            }

            var reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken);
            Interlocked.Increment(ref _opened);

            // Kept: the compact index, not Parquet.Net's parsed footer (about 3 KB per row group;
            // its key-value metadata, the rollups' location, is read through its own reader).
            var layout = reader.Metadata is { } parsed ? PointPageDecoder.LayoutOf(parsed) : null;
            var index = reader.Metadata is { } metadata ? FooterIndex.Of(metadata) : null;
            var lease = new Lease(path, stream, new Footer(index, layout));
            if (layout is null)
            {
                lease.Reader = reader; // reads of this file go through Parquet.Net
            }
            else
            {
                await reader.DisposeAsync(); // the stream is ours: Parquet.Net leaves it open
            }

            lock (_lock)
            {
                if (!_disposed)
                {
                    _footers[path] = lease.Footer;
                }
            }

            return lease;
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Parquet.Net's reader of the lease's file: the one that parsed the footer for the file's first
    /// lease, else opened (parsing it again) when a read falls back to Parquet.Net.
    /// </summary>
    private async ValueTask<ParquetReader> ReaderOfAsync(Lease lease, CancellationToken cancellationToken)
    {
        if (lease.Reader is null)
        {
            lease.Reader = await ParquetReader.CreateAsync(lease.Stream, cancellationToken: cancellationToken);
            Interlocked.Increment(ref _opened);
        }

        return lease.Reader;
    }

    /// <summary>Takes a lent reader back: kept if its file still exists and there is room, else closed.</summary>
    private async ValueTask ReturnAsync(Lease lease)
    {
        Lease? evicted = null;
        var keep = File.Exists(lease.Path); // forgotten (deleted) while it was lent: close it
        lock (_lock)
        {
            if (keep && !_disposed && capacity > 0)
            {
                _idle.AddLast(lease);
                if (_idle.Count > capacity)
                {
                    evicted = _idle.First!.Value;
                    _idle.RemoveFirst();
                }
            }
            else
            {
                evicted = lease;
            }

            if (!keep)
            {
                _footers.Remove(lease.Path);
            }
        }

        if (evicted is not null)
        {
            await evicted.CloseAsync();
        }
    }

    /// <summary>Closes the idle readers of these files (compaction removed them).</summary>
    public async ValueTask ForgetAsync(IReadOnlySet<string> paths)
    {
        List<Lease> closed = [];
        lock (_lock)
        {
            foreach (var path in paths)
            {
                _footers.Remove(path);
            }

            for (var node = _idle.First; node is not null;)
            {
                var next = node.Next;
                if (paths.Contains(node.Value.Path))
                {
                    closed.Add(node.Value);
                    _idle.Remove(node);
                }

                node = next;
            }
        }

        foreach (var lease in closed)
        {
            await lease.CloseAsync();
        }
    }

    /// <summary>Idle readers that keep Parquet.Net's reader (and its parsed footer): those of files <see cref="PointPageDecoder"/> does not read (for tests).</summary>
    internal int ParquetNetReaders
    {
        get
        {
            lock (_lock)
            {
                return _idle.Count(lease => lease.Reader is not null);
            }
        }
    }

    /// <summary>Parsed footers kept now, one per live file read (for tests).</summary>
    public int Footers
    {
        get
        {
            lock (_lock)
            {
                return _footers.Count;
            }
        }
    }

    /// <summary>Idle readers kept now (for tests).</summary>
    public int Idle
    {
        get
        {
            lock (_lock)
            {
                return _idle.Count;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<Lease> closed;
        lock (_lock)
        {
            _disposed = true;
            closed = [.. _idle];
            _idle.Clear();
            _footers.Clear();
            while (_decoders.TryPop(out var decoder))
            {
                decoder.Dispose();
            }
        }

        foreach (var lease in closed)
        {
            await lease.CloseAsync();
        }
    }

    /// <summary>A file's footer as <see cref="FooterIndex"/> and, when <see cref="PointPageDecoder"/> reads it, its point columns.</summary>
    private sealed record Footer(FooterIndex? Index, PointPageDecoder.Layout? Layout);

    /// <summary>An open file, its footer, and Parquet.Net's reader once one was needed.</summary>
    private sealed class Lease(string path, FileStream stream, Footer footer)
    {
        public string Path { get; } = path;

        public FileStream Stream { get; } = stream;

        /// <summary>Shared by every lease of the file; <see cref="Footer.Layout"/> null sends reads to Parquet.Net.</summary>
        public Footer Footer { get; } = footer;

        public ParquetReader? Reader { get; set; }

        public async ValueTask CloseAsync()
        {
            if (Reader is not null)
            {
                await Reader.DisposeAsync();
            }

            await Stream.DisposeAsync();
        }
    }
}
