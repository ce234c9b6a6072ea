using MetricStore.Core;
using MetricStore.Storage.Query;

namespace MetricStore.Storage.Head;

/// <summary>
/// One series: its sealed segments (oldest first), the chunks frozen for the seal in progress, and
/// the chunks still being appended, all in arrival order. Reads merge the three and return points
/// sorted by step with the last write of each step winning, so a step re-logged after it was sealed
/// still replaces the sealed value.
/// </summary>
/// <remarks>
/// The writer thread appends under the series lock; the sealer swaps frozen chunks for a segment
/// reference under the same lock; readers copy references out under it and read files outside it.
/// </remarks>
internal sealed class SeriesHead
{
    internal const int ChunkSize = 1 << 16;
    private readonly Lock _lock = new();
    private readonly List<SegmentRef> _segments = [];
    private List<HeadChunk> _chunks = [];
    private List<HeadChunk> _frozen = [];
    private long _chunkBytes; // memory of _chunks (HeadChunk.MemoryBytes)

    // The summary of the whole series (last write wins), kept up to date while steps only grow;
    // a step at or before the last one (a resumed run) makes it stale until a query recomputes it.
    // _summary covers every point but those of _summaryChunk (the chunk being appended) from
    // _summaryFrom on, which its rollup gives when asked; a chunk is folded in when it is full or
    // frozen. So an append does not scan its points a second time for the summary.
    private Aggregate _summary = Aggregate.Empty;
    private bool _summaryValid = true;
    private HeadChunk? _summaryChunk;
    private int _summaryFrom;
    private long _lastStep = long.MinValue; // while the summary is valid
    private long _version;

    private readonly ChunkRecycler _recycler;

    public SeriesHead(int id, SeriesKey key, ChunkRecycler recycler)
    {
        Id = id;
        Key = key;
        _recycler = recycler;
    }

    public int Id { get; }

    public SeriesKey Key { get; }

    /// <summary>The first chunk after a seal: small, since most series of a run are short (a few points per seal).</summary>
    internal const int FirstChunkSize = 32;

    /// <summary>Memory of the chunks being appended (not the frozen ones).</summary>
    public long UnsealedBytes
    {
        get
        {
            lock (_lock)
            {
                return _chunkBytes;
            }
        }
    }

    /// <summary>Appends the points; returns the bytes of chunk memory the head grew by (0 when they fitted).</summary>
    public long Append(SeriesPoints points)
    {
        lock (_lock)
        {
            var before = _chunkBytes;
            for (var i = 0; i < points.Count;)
            {
                var chunk = WritableChunk();
                var take = Math.Min(points.Count - i, chunk.Capacity - chunk.Count);
                var at = chunk.Count;
                var columns = chunk.Columns;
                Array.Copy(points.Steps, i, columns.Steps, at, take);
                Array.Copy(points.Values, i, columns.Values, at, take);
                if (points.SharedTimestamp)
                {
                    columns.Timestamps.AsSpan(at, take).Fill(points.Timestamps[0]);
                }
                else
                {
                    Array.Copy(points.Timestamps, i, columns.Timestamps, at, take);
                }

                Appended(chunk, at, take, points.Float32Origin);
                i += take;
            }

            return _chunkBytes - before;
        }
    }

    /// <summary>
    /// Appends points straight from a WAL record (replay), without an intermediate copy. Steps are
    /// an arithmetic run (first, stride) when <paramref name="rawSteps"/> is empty; values are
    /// float32 or float64 little-endian; one shared timestamp when <paramref name="rawTimestamps"/>
    /// is empty.
    /// </summary>
    public long AppendEncoded(int n, ReadOnlySpan<byte> rawSteps, long firstStep, long stride, ReadOnlySpan<byte> rawValues, bool float32, ReadOnlySpan<byte> rawTimestamps, long sharedTimestamp)
    {
        var steps = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(rawSteps);
        var doubles = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(rawValues);
        var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(rawValues);
        var timestamps = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(rawTimestamps);
        lock (_lock)
        {
            var before = _chunkBytes;
            for (var i = 0; i < n;)
            {
                var chunk = WritableChunk();
                var columns = chunk.Columns;
                var take = Math.Min(n - i, chunk.Capacity - chunk.Count);
                var at = chunk.Count;
                var stepTarget = columns.Steps.AsSpan(at, take);
                if (steps.IsEmpty)
                {
                    var step = firstStep + (i * stride);
                    for (var k = 0; k < take; k++, step += stride)
                    {
                        stepTarget[k] = step;
                    }
                }
                else
                {
                    steps.Slice(i, take).CopyTo(stepTarget);
                }

                if (float32)
                {
                    ColumnKernels.Widen(floats.Slice(i, take), columns.Values.AsSpan(at, take));
                }
                else
                {
                    doubles.Slice(i, take).CopyTo(columns.Values.AsSpan(at, take));
                }

                if (timestamps.IsEmpty)
                {
                    columns.Timestamps.AsSpan(at, take).Fill(sharedTimestamp);
                }
                else
                {
                    timestamps.Slice(i, take).CopyTo(columns.Timestamps.AsSpan(at, take));
                }

                Appended(chunk, at, take, float32);
                i += take;
            }

            return _chunkBytes - before;
        }
    }

    /// <summary>Under the lock: the chunk took points [at, at + take); keep its rollup and the summary current.</summary>
    private void Appended(HeadChunk chunk, int at, int take, bool float32Origin)
    {
        var increasing = chunk.Appended(at, take, float32Origin);
        _version++;
        if (!_summaryValid || take == 0)
        {
            return;
        }

        var steps = chunk.Columns.Steps;
        if (!increasing || steps[at] <= _lastStep)
        {
            _summaryValid = false;
            _summaryChunk = null;
            return;
        }

        _lastStep = steps[at + take - 1];
        if (!ReferenceEquals(chunk, _summaryChunk))
        {
            // A new chunk, or one grown into new arrays: what lies below 'at' is folded in already.
            _summaryChunk = chunk;
            _summaryFrom = at;
        }

        if (chunk.Count == chunk.Capacity)
        {
            FoldSummaryChunk(); // the next append goes to another chunk or grows this one
        }
    }

    /// <summary>Under the lock: adds the summary chunk's points not yet in the summary.</summary>
    private void FoldSummaryChunk()
    {
        if (_summaryChunk is { } chunk)
        {
            _summary.Add(chunk.Range(_summaryFrom, chunk.Count));
            _summaryChunk = null;
        }
    }

    public void AddSegment(SegmentRef segment)
    {
        lock (_lock)
        {
            _segments.Add(segment);
            _summaryValid = false;
            _summaryChunk = null;
            _version++;
        }
    }

    /// <summary>
    /// Moves the appended chunks aside for sealing (a list swap: the writer thread calls this) and
    /// returns them, or null when empty. Frozen chunks never change again.
    /// </summary>
    public List<HeadChunk>? Freeze()
    {
        lock (_lock)
        {
            if (_chunks.Count == 0)
            {
                return null;
            }

            FoldSummaryChunk(); // frozen chunks never change again, and a seal keeps the summary
            _frozen = _chunks;
            _chunks = [];
            _chunkBytes = 0;
            return _frozen;
        }
    }

    /// <summary>
    /// Compaction replaced the files in <paramref name="removed"/> by <paramref name="replacements"/>
    /// (this series' row groups in the output, in step order). The merged data is older than any
    /// segment sealed after the compaction began, so it takes the place of the first removed reference.
    /// </summary>
    public void ReplaceSegments(IReadOnlySet<string> removed, IReadOnlyList<SegmentRef> replacements)
    {
        lock (_lock)
        {
            var at = _segments.FindIndex(r => removed.Contains(r.File));
            if (at < 0)
            {
                return;
            }

            _segments.RemoveAll(r => removed.Contains(r.File));
            _segments.InsertRange(Math.Min(at, _segments.Count), replacements);
            _version++;
        }
    }

    /// <summary>
    /// The frozen points are now in <paramref name="segments"/>: drop them from the head and return
    /// the chunks, for the caller to retire to the <see cref="ChunkRecycler"/> once every series is done.
    /// </summary>
    public List<HeadChunk> CompleteSeal(IEnumerable<SegmentRef> segments)
    {
        lock (_lock)
        {
            _segments.AddRange(segments);
            var sealedChunks = _frozen;
            _frozen = [];
            _version++;
            return sealedChunks;
        }
    }

    /// <summary>The seal failed: the frozen points go back in front of the newer ones.</summary>
    public void Unfreeze()
    {
        lock (_lock)
        {
            _frozen.AddRange(_chunks);
            _chunks = _frozen;
            _frozen = [];
            _chunkBytes = _chunks.Sum(c => c.MemoryBytes);
            _version++;
        }
    }

    /// <summary>
    /// What a reader sees, in arrival order: sealed row groups (oldest first), then head chunks as
    /// views (chunks only grow past their count and a growing chunk gets new arrays, so the points
    /// below the count seen here never change), and the version they belong to.
    /// </summary>
    public (SegmentRef[] Segments, HeadChunkView[] Chunks, long Version) Snapshot()
    {
        lock (_lock)
        {
            var chunks = new HeadChunkView[_frozen.Count + _chunks.Count];
            var i = 0;
            foreach (var chunk in _frozen)
            {
                chunks[i++] = chunk.View();
            }

            foreach (var chunk in _chunks)
            {
                chunks[i++] = chunk.View();
            }

            return ([.. _segments], chunks, _version);
        }
    }

    /// <summary>The kept summary, when it is current.</summary>
    public bool TryGetSummary(out Aggregate summary)
    {
        lock (_lock)
        {
            summary = _summary;
            if (_summaryValid && _summaryChunk is { } chunk)
            {
                summary.Add(chunk.Range(_summaryFrom, chunk.Count));
            }

            return _summaryValid;
        }
    }

    /// <summary>Keeps a summary computed from the snapshot of <paramref name="version"/>, unless the series changed since.</summary>
    public void SetSummary(in Aggregate summary, long version)
    {
        lock (_lock)
        {
            if (version == _version)
            {
                _summary = summary;
                _summaryValid = true;
                _summaryChunk = null; // appends from now on start a new range
                _lastStep = summary.Count == 0 ? long.MinValue : summary.LastStep;
            }
        }
    }

    /// <summary>Points of the parts (in arrival order) within the range, sorted by step, last write wins.</summary>
    internal static SeriesColumns Merge(List<SeriesColumns> parts, int start, long fromStep, long toStep)
    {
        var total = 0;
        for (var p = start; p < parts.Count; p++)
        {
            total += parts[p].Count;
        }

        var result = new SeriesColumns(0);
        result.EnsureCapacity(Math.Max(total, 1));
        var n = 0;
        var increasing = true;
        var last = long.MinValue;
        for (var p = start; p < parts.Count; p++)
        {
            var c = parts[p];
            for (var i = 0; i < c.Count; i++)
            {
                var step = c.Steps[i];
                if (step < fromStep || step > toStep)
                {
                    continue;
                }

                increasing &= n == 0 || step > last;
                last = step;
                result.Steps[n] = step;
                result.Values[n] = c.Values[i];
                result.Timestamps[n] = c.Timestamps[i];
                n++;
            }
        }

        result.Count = n;
        if (!increasing)
        {
            SortLastWriteWins(result);
        }

        return result;
    }

    /// <summary>Sorts by step; of equal steps keeps the one that arrived last.</summary>
    internal static void SortLastWriteWins(SeriesColumns columns)
    {
        var n = columns.Count;
        var keys = new long[n];
        var order = new int[n];
        Array.Copy(columns.Steps, keys, n);
        for (var i = 0; i < n; i++)
        {
            order[i] = i;
        }

        // Unstable sort by step; arrival order is recovered from the index among equal steps.
        Array.Sort(keys, order);
        var steps = new long[n];
        var values = new double[n];
        var timestamps = new long[n];
        var m = 0;
        for (var i = 0; i < n;)
        {
            var j = i;
            var lastIndex = order[i];
            while (j + 1 < n && keys[j + 1] == keys[i])
            {
                j++;
                lastIndex = Math.Max(lastIndex, order[j]);
            }

            steps[m] = keys[i];
            values[m] = columns.Values[lastIndex];
            timestamps[m] = columns.Timestamps[lastIndex];
            m++;
            i = j + 1;
        }

        Array.Copy(steps, columns.Steps, m);
        Array.Copy(values, columns.Values, m);
        Array.Copy(timestamps, columns.Timestamps, m);
        columns.Count = m;
    }

    /// <summary>
    /// The chunk to append to. A series starts small (most series of a run are short) and grows by
    /// doubling up to <see cref="ChunkSize"/>; after that it adds whole chunks and never copies.
    /// From 16k points on (arrays on the large object heap) a grown chunk is a copy into a chunk of
    /// the recycler's, which takes the outgrown one back once no reader can see it: a series that
    /// grows again after every seal used to leave 16k, 32k and 64k-point arrays behind each time.
    /// </summary>
    private HeadChunk WritableChunk()
    {
        if (_chunks.Count == 0)
        {
            // Small again after a seal, even for a series that was large: thousands of series that
            // go quiet must not each hold a 1.5 MB chunk for a few new points.
            var first = new HeadChunk(FirstChunkSize);
            _chunks.Add(first);
            _chunkBytes += first.MemoryBytes;
        }

        var last = _chunks[^1];
        if (last.Count < last.Capacity)
        {
            return last;
        }

        if (last.Capacity < ChunkSize)
        {
            var capacity = Math.Min(ChunkSize, last.Capacity * 2);
            var outgrown = last.MemoryBytes;
            if (!ChunkRecycler.IsPooled(capacity))
            {
                last.Grow(capacity);
                _chunkBytes += last.MemoryBytes - outgrown;
                return last;
            }

            var grown = _recycler.Rent(capacity);
            grown.CopyFrom(last);
            _chunks[^1] = grown;
            _chunkBytes += grown.MemoryBytes - outgrown;
            _recycler.Retire([last]); // after it left the series: readers holding a view keep it from reuse
            return grown;
        }

        var chunk = _recycler.Rent();
        _chunks.Add(chunk);
        _chunkBytes += chunk.MemoryBytes;
        return chunk;
    }
}

/// <summary>
/// Where some of a series' sealed points are: a row group of a file, its value type, step range,
/// row count and rollup (loaded from the file's footer).
/// </summary>
internal sealed record SegmentRef(string File, int RowGroup, bool Float32, long MinStep, long MaxStep, int Rows, Rollup Rollup);
