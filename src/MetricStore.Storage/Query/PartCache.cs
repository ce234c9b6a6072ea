using MetricStore.Storage.Head;
using MetricStore.Storage.Segments;

namespace MetricStore.Storage.Query;

/// <summary>
/// A decoded row group and its fine rollup, for bucket edges. The rollup of a decoded row group is
/// built when a read first needs it: a raw read never does, and under a dashboard whose full reads
/// miss the cache, building it at every miss allocated 163 KB of large-object heap per 100k points
/// that nobody read (0.66 GB in 15 s of the mixed load's read-back, docs/benchmarks.md, tenth session).
/// </summary>
internal sealed class CachedPart
{
    private readonly PartCache? _cache;
    private Rollup? _fine;

    /// <summary>Points in memory whose rollup is kept up to date by their owner (a head chunk, a merge).</summary>
    public CachedPart(SeriesColumns points, Rollup fine)
    {
        Points = points;
        _fine = fine;
    }

    /// <summary>A decoded row group of <paramref name="cache"/>: its rollup is built on first use (and counted there).</summary>
    public CachedPart(SeriesColumns points, PartCache cache)
    {
        Points = points;
        _cache = cache;
    }

    public SeriesColumns Points { get; }

    /// <summary>The fine rollup (<see cref="Rollup.Fine"/>) of the points; reads racing to build it first may each build one, and all are equal.</summary>
    public Rollup Fine => Volatile.Read(ref _fine) ?? BuildFine();

    public void Deconstruct(out SeriesColumns points, out Rollup fine)
    {
        points = Points;
        fine = Fine;
    }

    private Rollup BuildFine()
    {
        _cache?.CountRollupBuilt();
        var p = Points;
        return Interlocked.CompareExchange(ref _fine, Rollup.Build(p.Steps, p.Values, p.Timestamps, 0, p.Count, Rollup.Fine), null) ?? _fine!;
    }
}

/// <summary>
/// Decoded sealed row groups with fine rollups, least recently used first out, bounded by bytes
/// (<see cref="HeadChunk.ColumnBytesPerPoint"/> per point of column capacity, <see cref="HeadChunk.RollupBytesPerPoint"/> of rollup). Row
/// groups are immutable and their file names never reused, so an entry never goes stale; entries of
/// files removed by compaction go when the files do (<see cref="Forget"/>), rather than taking the
/// budget from live row groups until they age out. Concurrent readers of one row group share one decode.
/// The capacity is asked for at every insertion and <see cref="Trim"/>: it shrinks while the head
/// grows (<see cref="StorageOptions.MemoryBudgetBytes"/>). Evicted columns go to the recycler, and
/// a miss decodes into columns it hands back (<see cref="ChunkRecycler.ReturnColumns"/>).
/// <para>
/// Every read that takes an entry pins it for the read's scope (<see cref="CachePins"/>): an entry
/// evicted while pinned leaves the cache at once, but its columns go back for reuse only when the
/// last read holding it lets go. So a read keeps from reuse exactly the row groups it holds, where
/// an epoch per read kept every column evicted during the read (docs/benchmarks.md, tenth session).
/// Until then a read that asks for it shares those columns instead of decoding a copy of its own.
/// </para>
/// </summary>
internal sealed class PartCache(Func<long> capacityBytes, SegmentReaders readers, ChunkRecycler recycler)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string File, int RowGroup), LinkedListNode<Entry>> _entries = [];
    private readonly LinkedList<Entry> _lru = new();
    private long _bytes;
    private long _heldBytes; // evicted entries still pinned
    private readonly Dictionary<(string File, int RowGroup), Entry> _held = []; // those entries, by row group
    private long _hits;
    private long _misses;
    private long _rollupsBuilt;

    public long Hits => Interlocked.Read(ref _hits);

    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>Fine rollups built for decoded row groups (for tests: raw reads build none).</summary>
    public long RollupsBuilt => Interlocked.Read(ref _rollupsBuilt);

    internal void CountRollupBuilt() => Interlocked.Increment(ref _rollupsBuilt);

    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Bytes of evicted row groups that reads still hold; they go to the recycler when the last lets go.</summary>
    public long HeldEvictedBytes => Interlocked.Read(ref _heldBytes);

    /// <summary>The capacity now.</summary>
    public long Capacity => capacityBytes();

    /// <summary>Evicts least recently used row groups until the cache fits its capacity now (cheap when it does).</summary>
    public void Trim()
    {
        if (Interlocked.Read(ref _bytes) <= capacityBytes())
        {
            return;
        }

        lock (_lock)
        {
            // Asked again after each eviction: the evicted columns join the recycler's pool, which
            // the capacity leaves room for.
            while (_lru.Last is { } last && _bytes > capacityBytes())
            {
                Remove(last);
            }
        }
    }

    /// <summary>
    /// Drops the row groups of these files (names in the segment directory): compaction removed
    /// them, and no read that may list them is active. Their columns go to the recycler.
    /// </summary>
    public void Forget(IReadOnlySet<string> files)
    {
        lock (_lock)
        {
            for (var node = _lru.First; node is not null;)
            {
                var next = node.Next;
                if (files.Contains(node.Value.Key.File))
                {
                    Remove(node);
                }

                node = next;
            }
        }
    }

    /// <summary>Whether the row group is cached (or being decoded into the cache) now.</summary>
    public bool Contains(SegmentRef part)
    {
        lock (_lock)
        {
            return _entries.ContainsKey((part.File, part.RowGroup));
        }
    }

    /// <summary>
    /// The decoded row group, pinned for <paramref name="pins"/> (whose owner must not touch the
    /// points after it unpins): loaded into the cache on a miss, shared with a decode already running.
    /// </summary>
    public Task<CachedPart> GetAsync(string segmentDirectory, SegmentRef part, CachePins pins)
    {
        var key = (part.File, part.RowGroup);
        Entry entry;
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var node))
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                Interlocked.Increment(ref _hits);
                Pin(node.Value, pins);
                return node.Value.Load;
            }

            if (_held.TryGetValue(key, out var held))
            {
                // Evicted, but another read still holds it: share those columns rather than decode
                // a copy per read. Sixteen full reads of one series under ingest held 498 MB of such
                // copies when the cache shrank (docs/benchmarks.md, thirteenth session). It stays
                // out of the cache and goes when the last read lets go.
                Interlocked.Increment(ref _hits);
                Pin(held, pins);
                return held.Load;
            }

            Interlocked.Increment(ref _misses);
            var capacity = capacityBytes();
            var columns = recycler.RentColumns(part.Rows) ?? new SeriesColumns(ChunkRecycler.ColumnCapacity(part.Rows));
            var bytes = ChunkRecycler.ColumnsBytes(columns) + ((long)part.Rows * HeadChunk.RollupBytesPerPoint);

            // Decoding runs off the lock (the page decoder is synchronous).
            var path = Path.Combine(segmentDirectory, part.File);
            var load = Task.Run(async () =>
            {
                var points = await readers.ReadAsync(path, part.RowGroup, part.Float32, CancellationToken.None, columns); // the footer is parsed once per file, not per miss
                return new CachedPart(points, this);
            });
            entry = new Entry(key, load, bytes);
            if (entry.Bytes > capacity)
            {
                return load; // larger than the whole cache: read through
            }

            _entries[key] = _lru.AddFirst(entry);
            Interlocked.Add(ref _bytes, entry.Bytes);
            Pin(entry, pins);
            while (_lru.Last is { } last && last != _lru.First && _bytes > capacityBytes())
            {
                Remove(last);
            }
        }

        // A failed read (a damaged file; a prefetch that outlived its read, whose file a compaction
        // then removed) is not remembered.
        _ = entry.Load.ContinueWith(
            t =>
            {
                _ = t.Exception; // observed: a prefetch nobody awaited must not surface as unobserved
                lock (_lock)
                {
                    if (_entries.TryGetValue(key, out var node) && node.Value == entry)
                    {
                        Remove(node);
                    }

                    ForgetHeld(entry);
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return entry.Load;
    }

    /// <summary>Lets go of the entries these pins hold; the evicted ones nobody else holds give their columns back.</summary>
    public void Unpin(CachePins pins)
    {
        lock (_lock)
        {
            foreach (var entry in pins.Held)
            {
                if (--entry.Pins == 0 && entry.Evicted)
                {
                    Interlocked.Add(ref _heldBytes, -entry.Bytes);
                    ForgetHeld(entry);
                    Recycle(entry);
                }
            }

            pins.Held.Clear();
        }
    }

    /// <summary>Under the lock.</summary>
    private static void Pin(Entry entry, CachePins pins)
    {
        entry.Pins++;
        pins.Held.Add(entry);
    }

    /// <summary>Under the lock: takes the entry out of the cache; its columns go to the recycler now or when the last read holding it lets go.</summary>
    private void Remove(LinkedListNode<Entry> node)
    {
        var entry = node.Value;
        _lru.Remove(node);
        _entries.Remove(entry.Key);
        Interlocked.Add(ref _bytes, -entry.Bytes);
        entry.Evicted = true;
        if (entry.Pins > 0)
        {
            Interlocked.Add(ref _heldBytes, entry.Bytes);
            _held[entry.Key] = entry;
        }
        else
        {
            Recycle(entry);
        }
    }

    /// <summary>Under the lock: the entry is no longer offered to new reads (its last holder let go, or its decode failed).</summary>
    private void ForgetHeld(Entry entry)
    {
        if (_held.TryGetValue(entry.Key, out var held) && held == entry)
        {
            _held.Remove(entry.Key);
        }
    }

    /// <summary>An evicted entry no read holds: only a finished decode gives its columns back (one still running writes into them).</summary>
    private void Recycle(Entry entry)
    {
        if (entry.Load.IsCompletedSuccessfully)
        {
            recycler.ReturnColumns(entry.Load.Result.Points);
        }
    }

    internal sealed class Entry((string File, int RowGroup) key, Task<CachedPart> load, long bytes)
    {
        public (string File, int RowGroup) Key { get; } = key;

        public Task<CachedPart> Load { get; } = load;

        public long Bytes { get; } = bytes;

        /// <summary>Reads holding the entry now (under the cache lock).</summary>
        public int Pins { get; set; }

        /// <summary>Out of the cache (under the cache lock).</summary>
        public bool Evicted { get; set; }
    }
}

/// <summary>
/// The cached row groups one read scope holds (<see cref="PartCache.GetAsync"/>); the scope's end
/// unpins them (<see cref="PartCache.Unpin"/>). Used by one read, guarded by the cache's lock.
/// </summary>
internal sealed class CachePins
{
    internal List<PartCache.Entry> Held { get; } = [];
}
