using MetricStore.Storage.Head;

namespace MetricStore.Storage.Query;

/// <summary>
/// Points of one series sorted by step with unique steps, and their rollup. The points of a sealed
/// row group are loaded (through the cache, with a fine rollup) only when a query needs them: for a
/// bucket edge inside the run, or to return raw points; whole-run totals come from its footer rollup.
/// </summary>
internal sealed class SortedRun
{
    private readonly Func<Task<CachedPart>>? _load;
    private CachedPart? _part;
    private Task<CachedPart>? _loading;

    public SortedRun(SeriesColumns points, Rollup rollup)
    {
        _part = new CachedPart(points, rollup);
        Rollup = rollup;
        Count = points.Count;
        MinStep = points.Steps[0];
        MaxStep = points.Steps[points.Count - 1];
    }

    public SortedRun(SegmentRef segment, Func<Task<CachedPart>> load)
    {
        _load = load;
        Segment = segment;
        StoredAsFloat32 = segment.Float32;
        Rollup = segment.Rollup;
        Count = segment.Rows;
        MinStep = segment.MinStep;
        MaxStep = segment.MaxStep;
    }

    /// <summary>The sealed row group this run is, loaded on demand; null for points in memory.</summary>
    public SegmentRef? Segment { get; }

    public int Count { get; }

    public long MinStep { get; }

    public long MaxStep { get; }

    public Rollup Rollup { get; }

    /// <summary>A sealed row group whose file stores every value as float32 (so each is exactly a float32).</summary>
    public bool StoredAsFloat32 { get; }

    /// <summary>
    /// Whether every value of the run with from &lt;= step &lt;= to is exactly a float32: from the
    /// file's type for a sealed row group (a double file counts as no, without loading it), by a
    /// scan of the range for points in memory.
    /// </summary>
    public bool ValuesFitFloat32(long from, long to)
    {
        if (_load is not null)
        {
            return StoredAsFloat32;
        }

        var p = _part!.Points;
        var lo = LowerBound(p.Steps, Count, from);
        var hi = to == long.MaxValue ? Count : LowerBound(p.Steps, Count, to + 1);
        return ColumnKernels.IsFloat32Exact(p.Values.AsSpan(lo, hi - lo));
    }

    public async ValueTask<SeriesColumns> PointsAsync() => (await PartAsync()).Points;

    public async ValueTask<CachedPart> PartAsync() => _part ??= await (_loading ??= _load!());

    /// <summary>Starts loading the points (a cold row group decodes on the thread pool) without waiting.</summary>
    public void Prefetch()
    {
        if (_part is null && _load is not null)
        {
            _loading ??= _load();
        }
    }

    /// <summary>
    /// Forgets the loaded points of a sealed row group (the cache may still hold them), so a query
    /// over many row groups holds at most a couple at a time whatever the cache size.
    /// </summary>
    public void Release()
    {
        if (_load is not null)
        {
            _part = null;
            _loading = null;
        }
    }

    /// <summary>The aggregate of every point; reads points only for a head chunk's unfinished block.</summary>
    public async ValueTask<Aggregate> TotalAsync()
    {
        var total = Rollup.Total();
        var covered = Math.Min(Rollup.Valid << Rollup.Shift, Count);
        if (covered < Count)
        {
            var p = await PointsAsync();
            total.Add(Aggregate.Scan(p.Steps, p.Values, p.Timestamps, covered, Count));
        }

        return total;
    }

    /// <summary>The aggregate of the points with from &lt;= step &lt;= to.</summary>
    public async ValueTask<Aggregate> RangeAsync(long from, long to)
    {
        if (from <= MinStep && to >= MaxStep)
        {
            return await TotalAsync();
        }

        var (p, fine) = await PartAsync();
        var lo = LowerBound(p.Steps, Count, from);
        var hi = to == long.MaxValue ? Count : LowerBound(p.Steps, Count, to + 1);
        return fine.Range(p.Steps, p.Values, p.Timestamps, lo, hi);
    }

    /// <summary>
    /// The first index whose step is at least <paramref name="step"/>, starting from an interpolated
    /// guess and galloping to a bracket: steps are usually evenly spaced, so this touches a few cache
    /// lines where a binary search over a 10M-point column misses the cache some 20 times.
    /// </summary>
    public static int Find(long[] steps, int count, long step)
    {
        if (count == 0 || step <= steps[0])
        {
            return 0;
        }

        if (step > steps[count - 1])
        {
            return count;
        }

        // steps[0] < step <= steps[count - 1]: the answer is in [1, count - 1].
        var guess = (int)Int128.Clamp((Int128)(count - 1) * ((Int128)step - steps[0]) / ((Int128)steps[count - 1] - steps[0]), 1, count - 1);
        int lo, hi; // steps[lo - 1] < step <= steps[hi]
        if (steps[guess] >= step)
        {
            hi = guess;
            var stride = 1;
            lo = guess - 1;
            while (lo > 0 && steps[lo] >= step)
            {
                hi = lo;
                lo = Math.Max(0, lo - stride);
                stride <<= 1;
            }

            lo++;
        }
        else
        {
            lo = guess + 1;
            var stride = 1;
            hi = Math.Min(count - 1, guess + 1);
            while (steps[hi] < step)
            {
                lo = hi + 1;
                hi = Math.Min(count - 1, hi + stride);
                stride <<= 1;
            }
        }

        while (lo < hi)
        {
            var mid = (int)((uint)(lo + hi) >> 1);
            if (steps[mid] < step)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    /// <summary>The first index whose step is at least <paramref name="step"/> (plain binary search).</summary>
    public static int LowerBound(long[] steps, int count, long step)
    {
        int lo = 0, hi = count;
        while (lo < hi)
        {
            var mid = (int)((uint)(lo + hi) >> 1);
            if (steps[mid] < step)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }
}

/// <summary>
/// Turns a series' snapshot (sealed row groups and head chunks in arrival order) into disjoint
/// sorted runs in step order. Parts whose step ranges do not overlap are used as they are, with
/// their rollups; parts that overlap (a resumed run re-logging steps, or a head chunk whose steps
/// went back) are merged, last write wins, within the queried range only. Compaction merges
/// overlapping segments for good, so the merge cost stays with recent resumes.
/// </summary>
internal static class SeriesResolver
{
    public static async Task<List<SortedRun>> ResolveAsync(SegmentRef[] segments, HeadChunkView[] chunks, PartCache cache, CachePins pins, string segmentDirectory, long from, long to)
    {
        var parts = new List<Part>(segments.Length + chunks.Length);
        for (var i = 0; i < segments.Length; i++)
        {
            var s = segments[i];
            if (s.Rows > 0 && s.MaxStep >= from && s.MinStep <= to)
            {
                parts.Add(new Part(s.MinStep, s.MaxStep, Sorted: true, Arrival: i, s, null));
            }
        }

        for (var i = 0; i < chunks.Length; i++)
        {
            var c = chunks[i];
            if (c.Points.Count > 0 && c.MaxStep >= from && c.MinStep <= to)
            {
                parts.Add(new Part(c.MinStep, c.MaxStep, c.Sorted, segments.Length + i, null, c));
            }
        }

        parts.Sort(static (a, b) => a.MinStep != b.MinStep ? a.MinStep.CompareTo(b.MinStep) : a.Arrival.CompareTo(b.Arrival));
        var runs = new List<SortedRun>();
        for (var i = 0; i < parts.Count;)
        {
            var j = i + 1;
            var max = parts[i].MaxStep;
            while (j < parts.Count && parts[j].MinStep <= max)
            {
                max = Math.Max(max, parts[j].MaxStep);
                j++;
            }

            if (j == i + 1 && parts[i].Sorted)
            {
                runs.Add(AsRun(parts[i], cache, pins, segmentDirectory));
            }
            else if (await MergeAsync(parts.GetRange(i, j - i), cache, pins, segmentDirectory, from, to) is { } merged)
            {
                runs.Add(merged);
            }

            i = j;
        }

        return runs;
    }

    private static SortedRun AsRun(Part part, PartCache cache, CachePins pins, string segmentDirectory)
    {
        if (part.Segment is { } s)
        {
            return new SortedRun(s, () => cache.GetAsync(segmentDirectory, s, pins));
        }

        var c = part.Chunk!;
        return new SortedRun(c.Points, c.Rollup);
    }

    private static async Task<SortedRun?> MergeAsync(List<Part> cluster, PartCache cache, CachePins pins, string segmentDirectory, long from, long to)
    {
        cluster.Sort(static (a, b) => a.Arrival.CompareTo(b.Arrival));
        var pieces = new List<SeriesColumns>(cluster.Count);
        foreach (var part in cluster)
        {
            pieces.Add(part.Segment is { } s ? (await cache.GetAsync(segmentDirectory, s, pins)).Points : part.Chunk!.Points);
        }

        var merged = SeriesHead.Merge(pieces, 0, from, to);
        return merged.Count == 0 ? null : new SortedRun(merged, Rollup.Build(merged.Steps, merged.Values, merged.Timestamps, 0, merged.Count, Rollup.Fine));
    }

    private sealed record Part(long MinStep, long MaxStep, bool Sorted, int Arrival, SegmentRef? Segment, HeadChunkView? Chunk);
}
