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
internal sealed class SegmentReaders(int capacity) : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Lease> _idle = new();
    private bool _disposed;
    private long _opened;

    /// <summary>Files opened (footers parsed) since start (for tests).</summary>
    public long Opened => Interlocked.Read(ref _opened);

    /// <summary>
    /// One row group's points (<see cref="SegmentFile.ReadAsync(ParquetReader, string, int, bool, CancellationToken, SeriesColumns?)"/>)
    /// through a reader of the file kept open; a reader whose read failed is closed, not lent again.
    /// </summary>
    public async Task<SeriesColumns> ReadAsync(string path, int rowGroup, bool float32, CancellationToken cancellationToken, SeriesColumns? into = null)
    {
        var lease = await RentAsync(path, cancellationToken);
        SeriesColumns points;
        try
        {
            points = await SegmentFile.ReadAsync(lease.Reader, path, rowGroup, float32, cancellationToken, into);
        }
        catch
        {
            await lease.CloseAsync();
            throw;
        }

        await ReturnAsync(lease);
        return points;
    }

    /// <summary>A reader of the file, lent until <see cref="ReturnAsync"/>.</summary>
    private async Task<Lease> RentAsync(string path, CancellationToken cancellationToken)
    {
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
        }

        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        Interlocked.Increment(ref _opened);
        try
        {
            return new Lease(path, stream, await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken));
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
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
        }

        foreach (var lease in closed)
        {
            await lease.CloseAsync();
        }
    }

    /// <summary>An open file and its parsed footer.</summary>
    private sealed class Lease(string path, FileStream stream, ParquetReader reader)
    {
        public string Path { get; } = path;

        public ParquetReader Reader { get; } = reader;

        public async ValueTask CloseAsync()
        {
            await Reader.DisposeAsync();
            await stream.DisposeAsync();
        }
    }
}
