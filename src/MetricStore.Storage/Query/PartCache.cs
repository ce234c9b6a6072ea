using MetricStore.Storage.Head;
using MetricStore.Storage.Segments;

namespace MetricStore.Storage.Query;

/// <summary>A decoded row group and its fine rollup, for bucket edges.</summary>
internal sealed record CachedPart(SeriesColumns Points, Rollup Fine);

/// <summary>
/// Decoded sealed row groups with fine rollups, least recently used first out, bounded by bytes
/// (about 26 per point: 24 of points, 1.7 of rollup). Row
/// groups are immutable and their file names never reused, so an entry never goes stale; entries of
/// files removed by compaction simply age out. Concurrent readers of one row group share one decode.
/// The capacity is asked for at every insertion and <see cref="Trim"/>: it shrinks while the head
/// grows (<see cref="StorageOptions.MemoryBudgetBytes"/>).
/// </summary>
internal sealed class PartCache(Func<long> capacityBytes, SegmentReaders readers)
{
    private const int BytesPerPoint = HeadChunk.BytesPerPoint; // the same columns and fine rollup as a head chunk
    private readonly Lock _lock = new();
    private readonly Dictionary<(string File, int RowGroup), LinkedListNode<Entry>> _entries = [];
    private readonly LinkedList<Entry> _lru = new();
    private long _bytes;
    private long _hits;
    private long _misses;

    public long Hits => Interlocked.Read(ref _hits);

    public long Misses => Interlocked.Read(ref _misses);

    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>The capacity now.</summary>
    public long Capacity => capacityBytes();

    /// <summary>Evicts least recently used row groups until the cache fits its capacity now (cheap when it does).</summary>
    public void Trim()
    {
        var capacity = capacityBytes();
        if (Interlocked.Read(ref _bytes) <= capacity)
        {
            return;
        }

        lock (_lock)
        {
            while (_bytes > capacity && _lru.Last is { } last)
            {
                Remove(last);
            }
        }
    }

    public Task<CachedPart> GetAsync(string segmentDirectory, SegmentRef part)
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
                return node.Value.Load;
            }

            Interlocked.Increment(ref _misses);
            // Decoding runs off the lock (Parquet.Net may complete synchronously).
            var path = Path.Combine(segmentDirectory, part.File);
            var load = Task.Run(async () =>
            {
                var points = await readers.ReadAsync(path, part.RowGroup, part.Float32, CancellationToken.None); // the footer is parsed once per file, not per miss
                return new CachedPart(points, Rollup.Build(points.Steps, points.Values, points.Timestamps, 0, points.Count, Rollup.Fine));
            });
            entry = new Entry(key, load, (long)part.Rows * BytesPerPoint);
            var capacity = capacityBytes();
            if (entry.Bytes > capacity)
            {
                return load; // larger than the whole cache: read through
            }

            _entries[key] = _lru.AddFirst(entry);
            Interlocked.Add(ref _bytes, entry.Bytes);
            while (_bytes > capacity && _lru.Last is { } last && last != _lru.First)
            {
                Remove(last);
            }
        }

        // A failed read (a file compaction just removed, a damaged file) is not remembered.
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
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return entry.Load;
    }

    private void Remove(LinkedListNode<Entry> node)
    {
        _lru.Remove(node);
        _entries.Remove(node.Value.Key);
        Interlocked.Add(ref _bytes, -node.Value.Bytes);
    }

    private sealed record Entry((string File, int RowGroup) Key, Task<CachedPart> Load, long Bytes);
}
