namespace MetricStore.Storage.Query;

/// <summary>
/// Equal-width buckets over an inclusive step range: bucket b is
/// [Start + b × Width, min(End, Start + (b + 1) × Width − 1)], with Width = ⌈(End − Start + 1) / buckets⌉,
/// so there may be fewer buckets than asked for when the range is short.
/// </summary>
public sealed record BucketGrid(long Start, long End, long Width, int Count)
{
    public static BucketGrid Create(long start, long end, int buckets)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(end, start);
        var span = (Int128)end - start + 1;
        var width = (long)((span + buckets - 1) / buckets);
        var count = (int)((span + width - 1) / width);
        return new BucketGrid(start, end, width, count);
    }

    public long BucketStart(int bucket) => (long)(Start + ((Int128)bucket * Width));

    public long BucketEnd(int bucket) => (long)Int128.Min(End, Start + (((Int128)bucket + 1) * Width) - 1);

    public int BucketOf(long step) => (int)(((Int128)step - Start) / Width);
}

/// <summary>
/// One series downsampled: an aggregate per bucket of the grid (Count 0 = no points), and the line
/// selection if asked. The buckets live in a pooled array (a thousand of them would otherwise be a
/// large-object allocation per query): dispose the result when done with them.
/// </summary>
public sealed class DownsampledSeries(BucketGrid grid, Aggregate[] pooled, long[] lineSteps, double[] lineValues) : IDisposable
{
    private Aggregate[]? _buckets = pooled;

    public BucketGrid Grid { get; } = grid;

    public ReadOnlySpan<Aggregate> Buckets => (_buckets ?? throw new ObjectDisposedException(nameof(DownsampledSeries))).AsSpan(0, Grid.Count);

    public long[] LineSteps { get; } = lineSteps;

    public double[] LineValues { get; } = lineValues;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _buckets, null) is { } buckets)
        {
            System.Buffers.ArrayPool<Aggregate>.Shared.Return(buckets);
        }
    }
}

/// <summary>
/// Exact bucket aggregates from rollups: a bucket covering a whole sorted run takes the run's total;
/// a bucket edge inside a run costs two binary searches and at most two partial blocks scanned, so
/// the work grows with buckets and edges, not with points.
/// </summary>
internal static class Downsampler
{
    /// <summary>The buckets in an array rented from the shared pool (at least grid.Count long).</summary>
    public static async Task<Aggregate[]> BucketsAsync(List<SortedRun> runs, BucketGrid grid)
    {
        var buckets = System.Buffers.ArrayPool<Aggregate>.Shared.Rent(grid.Count);
        Array.Fill(buckets, Aggregate.Empty, 0, grid.Count);
        for (var r = 0; r < runs.Count; r++)
        {
            var run = runs[r];

            // Decode the next row group while this one is aggregated (two cores, two row groups).
            if (r + 1 < runs.Count)
            {
                runs[r + 1].Prefetch();
            }

            var first = Math.Max(run.MinStep, grid.Start);
            var last = Math.Min(run.MaxStep, grid.End);
            if (first > last)
            {
                continue;
            }

            var firstBucket = grid.BucketOf(first);
            var lastBucket = grid.BucketOf(last);
            if (firstBucket == lastBucket)
            {
                buckets[firstBucket].Add(await run.RangeAsync(grid.BucketStart(firstBucket), grid.BucketEnd(firstBucket)));
                continue;
            }

            // Each edge inside the run is found once: a bucket starts where the one before it ended.
            var (p, fine) = await run.PartAsync();
            var lo = SortedRun.Find(p.Steps, run.Count, grid.BucketStart(firstBucket));
            for (var b = firstBucket; b <= lastBucket; b++)
            {
                var end = grid.BucketEnd(b);
                var hi = end >= run.MaxStep ? run.Count : SortedRun.Find(p.Steps, run.Count, end + 1);
                buckets[b].Add(fine.Range(p.Steps, p.Values, p.Timestamps, lo, hi));
                lo = hi;
            }

            run.Release();
        }

        return buckets;
    }

    /// <summary>
    /// MinMaxLTTB (Van Der Donckt et al., 2023): the exact min and max point of 2 × <paramref name="points"/>
    /// bins (from the rollups), plus the first and last point, then Largest-Triangle-Three-Buckets down
    /// to <paramref name="points"/>. Every selected point is a real point; non-finite values are not drawn.
    /// </summary>
    public static async Task<(long[] Steps, double[] Values)> LineAsync(List<SortedRun> runs, long start, long end, int points)
    {
        var whole = Aggregate.Empty;
        foreach (var run in runs)
        {
            whole.Add(await run.RangeAsync(start, end));
        }

        var total = whole.Count;
        if (whole.FiniteCount <= points)
        {
            return await FiniteRawAsync(runs, start, end);
        }

        // Bins over the points' own extent; with gaps some stay empty and give no candidates.
        var binGrid = BucketGrid.Create(Math.Max(start, whole.FirstStep), Math.Min(end, whole.LastStep), (int)Math.Min(2L * points, total));
        var pooled = await BucketsAsync(runs, binGrid);
        var bins = pooled.AsSpan(0, binGrid.Count).ToArray();
        System.Buffers.ArrayPool<Aggregate>.Shared.Return(pooled);
        var candidates = new List<(long Step, double Value)>(bins.Length * 2 + 2);
        if ((double.IsFinite(whole.First) ? (whole.FirstStep, whole.First) : await FiniteEndAsync(runs, start, end, last: false)) is { } head)
        {
            candidates.Add(head);
        }

        foreach (var bin in bins)
        {
            if (bin.FiniteCount == 0)
            {
                continue;
            }

            var (a, b) = bin.MinStep <= bin.MaxStep ? ((bin.MinStep, bin.Min), (bin.MaxStep, bin.Max)) : ((bin.MaxStep, bin.Max), (bin.MinStep, bin.Min));
            Add(candidates, a);
            Add(candidates, b);
        }

        if ((double.IsFinite(whole.Last) ? (whole.LastStep, whole.Last) : await FiniteEndAsync(runs, start, end, last: true)) is { } tail)
        {
            Add(candidates, tail);
        }

        if (candidates.Count < points && whole.FiniteCount > points)
        {
            // Too sparse for the preselection to offer enough points: plain LTTB over all of them.
            var (steps, values) = await FiniteRawAsync(runs, start, end);
            candidates = [.. steps.Zip(values)];
        }

        return Lttb(candidates, points);

        static void Add(List<(long Step, double Value)> list, (long Step, double Value) point)
        {
            if (list.Count == 0 || list[^1].Step < point.Step)
            {
                list.Add(point);
            }
        }
    }

    /// <summary>The first (or last) point with a finite value in [start, end], scanning from that end.</summary>
    private static async Task<(long Step, double Value)?> FiniteEndAsync(List<SortedRun> runs, long start, long end, bool last)
    {
        for (var r = 0; r < runs.Count; r++)
        {
            var run = runs[last ? runs.Count - 1 - r : r];
            var p = await run.PointsAsync();
            var lo = SortedRun.LowerBound(p.Steps, run.Count, start);
            var hi = end == long.MaxValue ? run.Count : SortedRun.LowerBound(p.Steps, run.Count, end + 1);
            for (var k = 0; k < hi - lo; k++)
            {
                var i = last ? hi - 1 - k : lo + k;
                if (double.IsFinite(p.Values[i]))
                {
                    return (p.Steps[i], p.Values[i]);
                }
            }
        }

        return null;
    }

    private static async Task<(long[] Steps, double[] Values)> FiniteRawAsync(List<SortedRun> runs, long start, long end)
    {
        var steps = new List<long>();
        var values = new List<double>();
        foreach (var run in runs)
        {
            var p = await run.PointsAsync();
            var lo = SortedRun.LowerBound(p.Steps, run.Count, start);
            for (var i = lo; i < run.Count && p.Steps[i] <= end; i++)
            {
                if (double.IsFinite(p.Values[i]))
                {
                    steps.Add(p.Steps[i]);
                    values.Add(p.Values[i]);
                }
            }
        }

        return ([.. steps], [.. values]);
    }

    /// <summary>Largest-Triangle-Three-Buckets (Steinarsson, 2013) over points sorted by step; keeps the first and last.</summary>
    internal static (long[] Steps, double[] Values) Lttb(List<(long Step, double Value)> data, int threshold)
    {
        var n = data.Count;
        if (n <= threshold || threshold < 3)
        {
            return (data.Select(d => d.Step).ToArray(), data.Select(d => d.Value).ToArray());
        }

        var steps = new long[threshold];
        var values = new double[threshold];
        var every = (double)(n - 2) / (threshold - 2);
        var a = 0;
        steps[0] = data[0].Step;
        values[0] = data[0].Value;
        for (var i = 0; i < threshold - 2; i++)
        {
            var nextStart = (int)Math.Floor((i + 1) * every) + 1;
            var nextEnd = Math.Min((int)Math.Floor((i + 2) * every) + 1, n);
            double avgX = 0, avgY = 0;
            for (var k = nextStart; k < nextEnd; k++)
            {
                avgX += data[k].Step;
                avgY += data[k].Value;
            }

            var span = Math.Max(1, nextEnd - nextStart);
            avgX /= span;
            avgY /= span;
            var from = (int)Math.Floor(i * every) + 1;
            var to = (int)Math.Floor((i + 1) * every) + 1;
            double ax = data[a].Step, ay = data[a].Value;
            var best = -1.0;
            var chosen = from;
            for (var k = from; k < to; k++)
            {
                var area = Math.Abs(((ax - avgX) * (data[k].Value - ay)) - ((ax - data[k].Step) * (avgY - ay)));
                if (area > best)
                {
                    best = area;
                    chosen = k;
                }
            }

            steps[i + 1] = data[chosen].Step;
            values[i + 1] = data[chosen].Value;
            a = chosen;
        }

        steps[^1] = data[^1].Step;
        values[^1] = data[^1].Value;
        return (steps, values);
    }
}
