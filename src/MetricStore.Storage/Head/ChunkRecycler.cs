namespace MetricStore.Storage.Head;

/// <summary>
/// Reuses head chunks of the sizes whose arrays live on the large object heap (16k, 32k and 64k
/// points, <see cref="IsPooled"/>): full-size chunks after their points were sealed, and the 16k
/// and 32k chunks a series outgrows on its way to full size after every seal. So the head stops
/// allocating (and the kernel stops zeroing) some 100 MB of fresh large-object-heap arrays per
/// seal, and stops leaving holes of three sizes in that heap.
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
/// It also pools the columns of decoded row groups the query cache evicts (<see cref="ReturnColumns"/>),
/// so a miss decodes into the columns of an earlier eviction instead of allocating megabytes of
/// large-object heap. Those need no epoch: the cache pins each entry for the reads that took it
/// (<see cref="Query.CachePins"/>) and returns its columns only once it is evicted and unpinned.
/// (Guarded by epochs, one long read kept every column any other read evicted meanwhile from reuse;
/// under a bench's read-back only half the misses reused columns, docs/benchmarks.md, tenth session.)
/// </para>
/// <para>
/// And they guard the point files a compaction replaced (<see cref="RetireAsync"/>): a reader that
/// took its snapshot before the compaction may still open one, so the files go only once no such
/// reader is active. Deleting them at once made a read that raced several compactions fail with
/// "file not found" after its retries.
/// </para>
/// </remarks>
internal sealed class ChunkRecycler
{
    private readonly Lock _lock = new();
    private readonly Dictionary<long, int> _readers = [];
    private readonly Queue<(long Epoch, List<HeadChunk> Chunks)> _retired = new();
    private readonly Stack<HeadChunk>[] _free = [new(), new(), new()]; // by size class: 16k, 32k, 64k points
    private readonly long _maxPoints;
    private readonly LinkedList<SeriesColumns> _freeColumns = new(); // oldest first
    private readonly long _maxColumnBytes;
    private long _columnBytes; // free columns
    private readonly Queue<(long Epoch, Func<Task> Action)> _deferred = new();
    private Task _deferredRuns = Task.CompletedTask; // actions that came due, one after another
    private bool _closed;
    private long _epoch;
    private long _keptPoints; // capacity of the retired and free chunks

    /// <summary>The smallest pooled chunk: its step and timestamp arrays (128 KiB each) are the first on the large object heap.</summary>
    public const int SmallestPooled = SeriesHead.ChunkSize / 4;

    /// <param name="maxChunks">Most capacity kept, retired and free together, in full-size chunks (each holds 64k points: 1.5 MiB of columns).</param>
    /// <param name="maxColumnBytes">Most bytes of decoded row-group columns kept for reuse.</param>
    public ChunkRecycler(int maxChunks, long maxColumnBytes = 0)
    {
        _maxPoints = (long)maxChunks * SeriesHead.ChunkSize;
        _maxColumnBytes = maxColumnBytes;
    }

    /// <summary>Row-group columns handed out again instead of allocated (for tests and logs).</summary>
    public long ReusedColumns { get; private set; }

    /// <summary>Bytes of row-group columns ready for reuse.</summary>
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

    /// <summary>Capacity in points of the chunks waiting for readers or ready for reuse.</summary>
    public long KeptPoints
    {
        get
        {
            lock (_lock)
            {
                return _keptPoints;
            }
        }
    }

    /// <summary>Whether chunks of this capacity are pooled: 16k, 32k or 64k points.</summary>
    public static bool IsPooled(int capacity) => capacity is SmallestPooled or SmallestPooled * 2 or SeriesHead.ChunkSize;

    private static int SizeClass(int capacity) => capacity switch
    {
        SmallestPooled => 0,
        SmallestPooled * 2 => 1,
        SeriesHead.ChunkSize => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "not a pooled chunk size"),
    };

    /// <summary>Marks a reader active; pass the result to <see cref="ExitRead"/> when it no longer touches head points.</summary>
    public long EnterRead()
    {
        lock (_lock)
        {
            _readers[_epoch] = _readers.GetValueOrDefault(_epoch) + 1;
            return _epoch;
        }
    }

    /// <summary>Readers inside a read scope now (for tests).</summary>
    public int ActiveReaders
    {
        get
        {
            lock (_lock)
            {
                return _readers.Values.Sum();
            }
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

            // Off the reader's thread, in order; each action handles its own errors.
            var oldestReader = OldestReader();
            while (!_closed && _deferred.Count > 0 && _deferred.Peek().Epoch < oldestReader)
            {
                var action = _deferred.Dequeue().Action;
                _deferredRuns = _deferredRuns.ContinueWith(_ => action(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).Unwrap();
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> once no reader that entered before now is active: at once
    /// (awaited here) when no reader is active, else when the last such reader exits. For things a
    /// snapshot taken before now may still reach, taken out of every series before this call: the
    /// point files a compaction replaced.
    /// </summary>
    public Task RetireAsync(Func<Task> action)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            if (_readers.Count > 0)
            {
                _deferred.Enqueue((_epoch, action));
                _epoch++;
                return Task.CompletedTask;
            }
        }

        return action();
    }

    /// <summary>
    /// At shutdown, once nothing retires any more: waits for the actions that came due and runs those
    /// still waiting for readers now (a reader of a closed engine has nothing left to read), so none
    /// runs after the engine is gone, when another engine may own the directory.
    /// </summary>
    public async Task CloseAsync()
    {
        Task running;
        List<Func<Task>> waiting;
        lock (_lock)
        {
            _closed = true;
            running = _deferredRuns;
            waiting = _deferred.Select(d => d.Action).ToList();
            _deferred.Clear();
        }

        await running;
        foreach (var action in waiting)
        {
            await action();
        }
    }

    /// <summary>
    /// These chunks have left every series' head (sealed, or outgrown and copied into a larger
    /// chunk): reuse the pooled sizes once no reader can see them. Call it after the chunks left
    /// the series, so a reader that enters later cannot find them.
    /// </summary>
    public void Retire(List<HeadChunk> chunks)
    {
        var pooled = chunks.FindAll(static c => IsPooled(c.Capacity));
        lock (_lock)
        {
            if (pooled.Count > 0)
            {
                _retired.Enqueue((_epoch, pooled));
                foreach (var chunk in pooled)
                {
                    _keptPoints += chunk.Capacity;
                }

                Trim(_maxPoints);
            }

            _epoch++;
        }
    }

    /// <summary>
    /// Columns no reader can see any more (a row group the query cache evicted and no read holds;
    /// a scan's own columns after it ended): kept for the next miss of a close size. The oldest
    /// free columns make room; what does not fit in the bound is left to the garbage collector.
    /// </summary>
    public void ReturnColumns(SeriesColumns columns)
    {
        var bytes = ColumnsBytes(columns);
        lock (_lock)
        {
            while (_columnBytes + bytes > _maxColumnBytes && _freeColumns.First is { } oldest)
            {
                _freeColumns.RemoveFirst();
                _columnBytes -= ColumnsBytes(oldest.Value);
            }

            if (_columnBytes + bytes > _maxColumnBytes)
            {
                return;
            }

            _freeColumns.AddLast(columns);
            _columnBytes += bytes;
        }
    }

    /// <summary>
    /// Free columns for <paramref name="points"/> points, at most twice as large (so a cache entry
    /// never holds much more than it needs) and at most <paramref name="maxCapacity"/> (a scan asks
    /// for exactly the size it took of <see cref="Query.ScanMemory"/>); null when there are none.
    /// </summary>
    public SeriesColumns? RentColumns(int points, int maxCapacity = int.MaxValue)
    {
        lock (_lock)
        {
            for (var node = _freeColumns.Last; node is not null; node = node.Previous)
            {
                var capacity = node.Value.Steps.Length;
                if (capacity >= points && capacity / 2 < points && capacity <= maxCapacity)
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

    /// <summary>
    /// The capacity to allocate columns for <paramref name="points"/> points with: rounded up to a
    /// multiple of 8192 points (at most 8 % more for a 100k-point row group), so row groups of
    /// nearly the same size can decode into each other's columns. Allocated at their exact sizes,
    /// a 100,004-point miss could not take the free columns of a 100,000-point one, and under a
    /// dashboard load every such miss allocated 2.4 MB of new columns (docs/benchmarks.md, ninth
    /// session).
    /// </summary>
    public static int ColumnCapacity(int points) => points <= 8192 ? points : (int)Math.Min(Array.MaxLength, (points + 8191L) & ~8191L);

    /// <summary>Memory of columns, by their capacity.</summary>
    public static long ColumnsBytes(SeriesColumns columns) => (long)columns.Steps.Length * HeadChunk.ColumnBytesPerPoint;

    /// <summary>An empty chunk of a pooled capacity (full size by default): a reclaimed one when there is one, else a new one.</summary>
    public HeadChunk Rent(int capacity = SeriesHead.ChunkSize)
    {
        var free = _free[SizeClass(capacity)];
        lock (_lock)
        {
            if (free.Count == 0)
            {
                Reclaim();
            }

            if (free.TryPop(out var chunk))
            {
                Reused++;
                _keptPoints -= capacity;
                chunk.Reset();
                return chunk;
            }
        }

        return new HeadChunk(capacity);
    }

    /// <summary>
    /// Lets go of every kept chunk, for when writes have stopped: nothing will rent them soon, and
    /// what they held goes back to the query cache's share of the memory budget
    /// (<see cref="StorageOptions.KeptChunksIdleTime"/>). Returns the points of capacity let go.
    /// </summary>
    public long ReleaseKept()
    {
        lock (_lock)
        {
            var before = _keptPoints;
            Trim(0);
            return before - _keptPoints;
        }
    }

    /// <summary>Under the lock: frees the retired chunks no active reader entered early enough to see.</summary>
    private void Reclaim()
    {
        var oldestReader = OldestReader();
        while (_retired.Count > 0 && _retired.Peek().Epoch < oldestReader)
        {
            foreach (var chunk in _retired.Dequeue().Chunks)
            {
                _free[SizeClass(chunk.Capacity)].Push(chunk);
            }
        }
    }

    /// <summary>
    /// Under the lock: over <paramref name="maxPoints"/> of capacity, lets go of just enough chunks, free ones first (full-size
    /// first: the seals retire those), then the oldest retired ones. What it lets go of is left to
    /// the GC, which is safe whether or not a reader still holds it. (Dropping a whole retired seal
    /// at once, as it once did, threw away a hundred chunks that the next seconds of writes
    /// allocated again.)
    /// </summary>
    private void Trim(long maxPoints)
    {
        if (_keptPoints <= maxPoints)
        {
            return;
        }

        Reclaim();
        for (var size = _free.Length - 1; size >= 0; size--)
        {
            while (_keptPoints > maxPoints && _free[size].TryPop(out var chunk))
            {
                _keptPoints -= chunk.Capacity;
            }
        }

        while (_keptPoints > maxPoints && _retired.TryPeek(out var oldest))
        {
            _keptPoints -= oldest.Chunks[^1].Capacity;
            oldest.Chunks.RemoveAt(oldest.Chunks.Count - 1);
            if (oldest.Chunks.Count == 0)
            {
                _retired.Dequeue();
            }
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

/// <summary>An active reader of head chunks and point files; disposing it leaves (see <see cref="ChunkRecycler.Read"/>).</summary>
internal readonly struct ReadScope(ChunkRecycler recycler, long epoch) : IDisposable
{
    public void Dispose() => recycler.ExitRead(epoch);
}
