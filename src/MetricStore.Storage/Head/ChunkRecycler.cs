namespace MetricStore.Storage.Head;

/// <summary>
/// Reuses full-size head chunks after their points were sealed, so the head stops allocating
/// (and the kernel stops zeroing) some 100 MB of fresh large-object-heap arrays per seal, and the
/// large object heap stops fragmenting.
/// </summary>
/// <remarks>
/// Readers hold views of head chunks without a copy (a streamed Arrow read may hold one for a
/// while), so a sealed chunk may be reused only when no reader can still see it. That is decided
/// by epochs: a reader enters (<see cref="EnterRead"/>) before it takes a series snapshot and exits
/// when it no longer touches the points. Sealed chunks are retired with the current epoch once they
/// are out of every series, and the epoch moves on. A chunk retired at epoch r is free once every
/// reader still inside entered after r: those took their snapshots after the chunk had left the
/// head. A reader that never exits only stops reuse; the retired list is bounded and what falls off
/// it is left to the garbage collector, which is always safe.
/// <para>
/// The same epochs guard the decoded row groups the query cache evicts (<see cref="RetireColumns"/>):
/// a reader that took an entry before it was evicted may still read it, and every read of cached
/// row groups happens inside a read scope. Under a dashboard load whose row groups do not all fit
/// in the cache, every miss used to allocate (and every eviction drop) megabytes of large-object
/// heap; a miss now decodes into the columns of an earlier eviction.
/// </para>
/// </remarks>
internal sealed class ChunkRecycler
{
    private readonly Lock _lock = new();
    private readonly Dictionary<long, int> _readers = [];
    private readonly Queue<(long Epoch, List<HeadChunk> Chunks)> _retired = new();
    private readonly Stack<HeadChunk> _free = new();
    private readonly int _maxChunks;
    private readonly Queue<(long Epoch, SeriesColumns Columns)> _retiredColumns = new();
    private readonly LinkedList<SeriesColumns> _freeColumns = new(); // oldest first
    private readonly long _maxColumnBytes;
    private long _columnBytes; // retired and free columns
    private long _epoch;
    private int _retiredChunks;

    /// <param name="maxChunks">Most chunks kept, retired and free together (each holds 64k points: 1.5 MiB of columns).</param>
    /// <param name="maxColumnBytes">Most bytes of decoded row-group columns kept for reuse, retired and free together.</param>
    public ChunkRecycler(int maxChunks, long maxColumnBytes = 0)
    {
        _maxChunks = maxChunks;
        _maxColumnBytes = maxColumnBytes;
    }

    /// <summary>Row-group columns handed out again instead of allocated (for tests and logs).</summary>
    public long ReusedColumns { get; private set; }

    /// <summary>Bytes of row-group columns waiting for readers or ready for reuse.</summary>
    public long ColumnBytes
    {
        get
        {
            lock (_lock)
            {
                return _columnBytes;
            }
        }
    }

    /// <summary>Chunks handed out again instead of allocated (for tests and logs).</summary>
    public long Reused { get; private set; }

    /// <summary>Chunks waiting for readers or ready for reuse.</summary>
    public int Kept
    {
        get
        {
            lock (_lock)
            {
                return _retiredChunks + _free.Count;
            }
        }
    }

    /// <summary>Marks a reader active; pass the result to <see cref="ExitRead"/> when it no longer touches head points.</summary>
    public long EnterRead()
    {
        lock (_lock)
        {
            _readers[_epoch] = _readers.GetValueOrDefault(_epoch) + 1;
            return _epoch;
        }
    }

    /// <summary><see cref="EnterRead"/> until the scope is disposed: <c>using var read = recycler.Read();</c>.</summary>
    public ReadScope Read() => new(this, EnterRead());

    public void ExitRead(long epoch)
    {
        lock (_lock)
        {
            var n = _readers[epoch] - 1;
            if (n == 0)
            {
                _readers.Remove(epoch);
            }
            else
            {
                _readers[epoch] = n;
            }
        }
    }

    /// <summary>These sealed chunks have left every series' head: reuse them once no reader can see them.</summary>
    public void Retire(List<HeadChunk> chunks)
    {
        var full = chunks.FindAll(static c => c.Capacity == SeriesHead.ChunkSize);
        lock (_lock)
        {
            if (full.Count > 0)
            {
                _retired.Enqueue((_epoch, full));
                _retiredChunks += full.Count;
                while (_retiredChunks + _free.Count > _maxChunks && _retired.Count > 0)
                {
                    _retiredChunks -= _retired.Dequeue().Chunks.Count; // to the GC: a reader may still hold them
                }
            }

            _epoch++;
        }
    }

    /// <summary>
    /// Columns of a decoded row group the query cache let go (readers that took it before may still
    /// be reading it): reuse them once no reader can see them. The oldest free columns make room;
    /// what does not fit in the bound is left to the garbage collector.
    /// </summary>
    public void RetireColumns(SeriesColumns columns)
    {
        var bytes = ColumnsBytes(columns);
        lock (_lock)
        {
            ReclaimColumns();
            while (_columnBytes + bytes > _maxColumnBytes && _freeColumns.First is { } oldest)
            {
                _freeColumns.RemoveFirst();
                _columnBytes -= ColumnsBytes(oldest.Value);
            }

            if (_columnBytes + bytes > _maxColumnBytes)
            {
                return;
            }

            _retiredColumns.Enqueue((_epoch, columns));
            _columnBytes += bytes;
            _epoch++;
        }
    }

    /// <summary>
    /// Free columns for <paramref name="points"/> points that no reader can still see, at most twice
    /// as large (so a cache entry never holds much more than it needs); null when there are none.
    /// </summary>
    public SeriesColumns? RentColumns(int points)
    {
        lock (_lock)
        {
            ReclaimColumns();
            for (var node = _freeColumns.Last; node is not null; node = node.Previous)
            {
                var capacity = node.Value.Steps.Length;
                if (capacity >= points && capacity / 2 < points)
                {
                    _freeColumns.Remove(node);
                    _columnBytes -= ColumnsBytes(node.Value);
                    ReusedColumns++;
                    node.Value.Count = 0;
                    return node.Value;
                }
            }
        }

        return null;
    }

    /// <summary>Memory of columns, by their capacity.</summary>
    public static long ColumnsBytes(SeriesColumns columns) => (long)columns.Steps.Length * HeadChunk.ColumnBytesPerPoint;

    /// <summary>An empty full-size chunk: a reclaimed one when there is one, else a new one.</summary>
    public HeadChunk Rent()
    {
        lock (_lock)
        {
            if (_free.Count == 0)
            {
                Reclaim();
            }

            if (_free.TryPop(out var chunk))
            {
                Reused++;
                chunk.Reset();
                return chunk;
            }
        }

        return new HeadChunk(SeriesHead.ChunkSize);
    }

    /// <summary>Under the lock: frees the retired chunks no active reader entered early enough to see.</summary>
    private void Reclaim()
    {
        var oldestReader = OldestReader();
        while (_retired.Count > 0 && _retired.Peek().Epoch < oldestReader)
        {
            var (_, chunks) = _retired.Dequeue();
            _retiredChunks -= chunks.Count;
            foreach (var chunk in chunks)
            {
                _free.Push(chunk);
            }
        }
    }

    /// <summary>Under the lock: moves the retired columns no active reader entered early enough to see to the free list.</summary>
    private void ReclaimColumns()
    {
        var oldestReader = OldestReader();
        while (_retiredColumns.Count > 0 && _retiredColumns.Peek().Epoch < oldestReader)
        {
            _freeColumns.AddLast(_retiredColumns.Dequeue().Columns);
        }
    }

    /// <summary>Under the lock: the epoch the oldest active reader entered at (long.MaxValue when none is active).</summary>
    private long OldestReader()
    {
        var oldest = long.MaxValue;
        foreach (var epoch in _readers.Keys)
        {
            oldest = Math.Min(oldest, epoch);
        }

        return oldest;
    }
}

/// <summary>An active reader of head chunks and cached row groups; disposing it leaves (see <see cref="ChunkRecycler.Read"/>).</summary>
internal readonly struct ReadScope(ChunkRecycler recycler, long epoch) : IDisposable
{
    public void Dispose() => recycler.ExitRead(epoch);
}
