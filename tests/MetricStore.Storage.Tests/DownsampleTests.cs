using CsCheck;
using MetricStore.Storage.Query;
using MetricStore.Tests;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>
/// Downsampled reads and summaries against a brute-force scan of a last-write-wins model: random
/// runs of steps (long enough for rollup blocks to be used), overwrites, gaps, NaN and ±Inf, with
/// the points in the head only, in segments only, or both, across reopens and compactions.
/// </summary>
public sealed class DownsampleTests
{
    private static readonly Gen<double> s_value = Gen.Frequency(
        (20, Gen.Double[-1e3, 1e3]),
        (1, Gen.Const(double.NaN)),
        (1, Gen.Const(double.PositiveInfinity)),
        (1, Gen.Const(double.NegativeInfinity)));

    /// <summary>A request: a run of steps (start, count, stride), its values, and an action after it (0 none, 1 seal, 2 reopen).</summary>
    private static readonly Gen<(int Start, int Stride, double[] Values, int Action)[]> s_requests =
        Gen.Select(Gen.Int[0, 12_000], Gen.Int[1, 3], s_value.Array[1, 6_000], Gen.Int[0, 2]).Array[1, 6];

    private static readonly Gen<(int Buckets, int From, int Length, int Line)[]> s_queries =
        Gen.Select(Gen.Int[1, 300], Gen.Int[-100, 20_000], Gen.Int[0, 30_000], Gen.Int[0, 40]).Array[1, 8];

    [Fact]
    public async Task The_summary_stays_exact_when_a_batch_is_out_of_order_or_repeats_a_step()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), [1, 2, 3], [1.0, 2.0, 3.0])));

        // Starts after the last step, but is not in order within itself.
        await h.Engine.WriteAsync(Batch("w", 2, (Key(), [10, 5, 7], [10.0, 5.0, 7.0])));
        var summary = (await h.Engine.GetSummaryAsync(Key()))!.Aggregate;
        Assert.Equal((6L, 1L, 10L, 10.0, 28.0), (summary.Count, summary.FirstStep, summary.LastStep, summary.Last, summary.Sum));

        // Repeats a step within itself: the later point wins.
        await h.Engine.WriteAsync(Batch("w", 3, (Key(), [11, 11], [1.0, 2.0])));
        summary = (await h.Engine.GetSummaryAsync(Key()))!.Aggregate;
        Assert.Equal((7L, 11L, 2.0, 30.0), (summary.Count, summary.LastStep, summary.Last, summary.Sum));
    }

    [Fact]
    public async Task A_cached_row_group_builds_its_fine_rollup_only_when_a_bucket_edge_needs_it_and_once()
    {
        await using var h = EngineHarness.Open();
        var (steps, values) = Range(0, 50_000, s => s % 7 == 0 ? -s : s);
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        await h.Engine.SealNowAsync();

        // Raw reads load the row group into the cache and build no rollup.
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(50_000, h.Read(Key())!.Count);
        }

        Assert.Equal((1L, 0L), (h.Engine.QueryCache.Misses, h.Engine.CacheRollupsBuilt));

        // Edges inside the row group need it, once; the buckets equal a scan.
        for (var i = 0; i < 3; i++)
        {
            using var result = (await h.Engine.DownsampleAsync(Key(), BucketGrid.Create(100, 40_099, 4)))!;
            for (var b = 0; b < 4; b++)
            {
                var expected = Aggregate.Scan(steps, values, new long[steps.Length], 100 + (b * 10_000), 100 + ((b + 1) * 10_000));
                Assert.Equal((expected.Count, expected.Min, expected.Max, expected.Sum), (result.Buckets[b].Count, result.Buckets[b].Min, result.Buckets[b].Max, result.Buckets[b].Sum));
            }
        }

        Assert.Equal((1L, 1L), (h.Engine.QueryCache.Misses, h.Engine.CacheRollupsBuilt));
    }

    [Fact]
    public void Every_bucket_equals_a_full_scan()
    {
        Gen.Select(s_requests, s_queries, Gen.Int[2, 4]).Sample(
            t => Check(t.Item1, t.Item2, compactAt: t.Item3),
            iter: 25);
    }

    [Fact]
    public async Task A_series_longer_than_a_row_group_is_split_and_read_exactly()
    {
        await using var h = EngineHarness.Open();
        const int n = 2_500_000;
        var (steps, values) = Range(0, n, s => Math.Sin(s / 1000.0) + (s == 1_234_567 ? 100 : 0));
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        await h.Engine.SealNowAsync();
        await h.ReopenAsync();
        Assert.Equal(n, h.Read(Key())!.Count);

        var grid = BucketGrid.Create(0, n - 1, 1000);
        using var result = (await h.Engine.DownsampleAsync(Key(), grid))!;
        var spike = result.Buckets[grid.BucketOf(1_234_567)];
        Assert.Equal(1_234_567, spike.MaxStep);
        Assert.Equal(values[1_234_567], spike.Max);
        Assert.Equal(n, result.Buckets.ToArray().Sum(b => b.Count));

        // Few wide buckets over an unaligned range use the upper rollup levels (32K and 1M points).
        var wide = BucketGrid.Create(12_345, 2_400_000, 7);
        using var coarse = (await h.Engine.DownsampleAsync(Key(), wide))!;
        for (var b = 0; b < wide.Count; b++)
        {
            var lo = (int)wide.BucketStart(b);
            var hi = (int)wide.BucketEnd(b);
            var expected = Aggregate.Scan(steps, values, steps, lo, hi + 1);
            var actual = coarse.Buckets[b];
            Assert.Equal((expected.Count, expected.Min, expected.MinStep, expected.Max, expected.MaxStep, expected.First, expected.Last), (actual.Count, actual.Min, actual.MinStep, actual.Max, actual.MaxStep, actual.First, actual.Last));
            Assert.Equal(expected.Sum, actual.Sum, 1e-6);
        }
        var summary = (await h.Engine.GetSummaryAsync(Key()))!.Aggregate;
        Assert.Equal((n, 0L, n - 1L, values[^1]), (summary.Count, summary.FirstStep, summary.LastStep, summary.Last));

        // Three row groups of at most 1M rows: a reader decodes at most that many points at once.
        await using var reader = await Parquet.ParquetReader.CreateAsync(Directory.GetFiles(Path.Combine(h.DataDirectory, "segments"), "*-d.parquet").Single());
        Assert.Equal(3, reader.RowGroupCount);
    }

    [Fact]
    public async Task Non_finite_values_are_counted_apart_and_left_out_of_min_max_and_mean()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), [1, 2, 3, 4, 5, 6], [double.NaN, 2, double.PositiveInfinity, 4, double.NegativeInfinity, double.NaN])));
        using var one = (await h.Engine.DownsampleAsync(Key(), BucketGrid.Create(1, 6, 1)))!;
        var b = one.Buckets[0];
        Assert.Equal(1, one.Buckets.Length);
        Assert.Equal((6L, 2L, 2L), (b.Count, b.NanCount, b.InfCount));
        Assert.Equal((2.0, 4.0, 3.0), (b.Min, b.Max, b.Mean));
        Assert.True(double.IsNaN(b.First) && double.IsNaN(b.Last));

        await h.Engine.WriteAsync(Batch("w", 2, (Key("only-nan"), [1], [double.NaN])));
        var summary = (await h.Engine.GetSummaryAsync(Key("only-nan")))!.Aggregate;
        Assert.Equal((1L, 0L), (summary.Count, summary.FiniteCount));
        Assert.True(double.IsNaN(summary.Mean));
    }

    [Fact]
    public async Task The_query_cache_stays_within_its_budget_and_reads_through_when_it_is_zero()
    {
        await using var h = EngineHarness.Open();
        for (ulong seq = 1; seq <= 3; seq++)
        {
            var (steps, values) = Range((long)(seq - 1) * 10_000, 10_000, s => s);
            await h.Engine.WriteAsync(Batch("w", seq, (Key(), steps, values)));
            await h.Engine.SealNowAsync();
        }

        await h.CloseAsync();
        foreach (var budget in new[] { 0L, 400_000L })
        {
            await using var engine = StorageEngine.Open(h.Options() with { QueryCacheBytes = budget });
            for (var round = 0; round < 2; round++)
            {
                using var result = (await engine.DownsampleAsync(Key(), BucketGrid.Create(0, 29_999, 7)))!;
                Assert.Equal(30_000, result.Buckets.ToArray().Sum(b => b.Count));
                Assert.Equal(Enumerable.Range(0, 30_000).Select(i => (double)i), EngineHarness.Read(engine, Key())!.Values.AsSpan(0, 30_000).ToArray());
            }

            var (bytes, hits, misses) = engine.QueryCache;
            Assert.True(bytes <= budget, $"{bytes} bytes cached over a budget of {budget}");
            Assert.True(misses >= 3, $"{misses} misses");
            if (budget == 0)
            {
                Assert.Equal(0, hits);
            }
        }

        await h.ReopenAsyncAfterClose();
    }

    [Fact]
    public async Task Downsampled_reads_during_seals_and_compactions_complete_and_count_every_acked_point()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        await using var engine = StorageEngine.Open(h.Options() with { CompactAtSegments = 2, QueryCacheBytes = 2_000_000 });
        var acked = 0L;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(6));
        var writer = Task.Run(async () =>
        {
            for (ulong seq = 1; !stop.IsCancellationRequested; seq++)
            {
                var (steps, values) = Range((long)(seq - 1) * 5_000, 5_000, s => s % 97);
                await engine.WriteAsync(Batch("w", seq, (Key(), steps, values)));
                Interlocked.Add(ref acked, 5_000);
                if (seq % 3 == 0)
                {
                    await engine.SealNowAsync();
                }
            }
        });

        var reads = 0;
        while (!writer.IsCompleted)
        {
            var before = Interlocked.Read(ref acked);
            var query = Task.Run(async () =>
            {
                using var result = await engine.DownsampleAsync(Key(), BucketGrid.Create(0, 10_000_000, 100));
                var raw = await engine.ReadSeriesAsync(Key());
                return (result?.Buckets.ToArray().Sum(b => b.Count) ?? 0, raw?.Count ?? 0);
            });
            var finished = await Task.WhenAny(query, Task.Delay(TimeSpan.FromSeconds(20)));
            Assert.True(finished == query, "a read did not complete within 20 s while seals and compactions ran");
            var (bucketed, read) = await query;
            Assert.True(bucketed >= before && read >= before, $"read {bucketed} bucketed / {read} raw points after {before} were acked");
            reads++;
        }

        await writer;
        await engine.CompactionIdleAsync();
        Assert.True(engine.Compactions > 0 && reads > 10, $"{engine.Compactions} compactions, {reads} reads");
    }

    [Fact]
    public async Task Changed_summaries_are_offered_once_and_again_when_marked_after_a_failed_copy()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key("a"), [1, 2], [1.0, 2.0]), (Key("b"), [1], [5.0])));
        var first = await h.Engine.TakeChangedSummariesAsync();
        Assert.Equal(["a", "b"], first.Select(s => s.Key.Metric).Order());
        Assert.Equal(2.0, first.Single(s => s.Key.Metric == "a").Aggregate.Last);
        Assert.Empty(await h.Engine.TakeChangedSummariesAsync());

        h.Engine.MarkSummariesChanged([Key("b")]);
        Assert.Equal(["b"], (await h.Engine.TakeChangedSummariesAsync()).Select(s => s.Key.Metric));

        await h.Engine.WriteAsync(Batch("w", 2, (Key("a"), [3], [0.5])));
        var next = Assert.Single(await h.Engine.TakeChangedSummariesAsync());
        Assert.Equal((3L, 0.5), (next.Aggregate.Count, next.Aggregate.Last));

        await h.ReopenAsync(); // every series is offered once after open
        Assert.Equal(2, (await h.Engine.TakeChangedSummariesAsync()).Count);
    }

    private static void Check((int Start, int Stride, double[] Values, int Action)[] requests, (int Buckets, int From, int Length, int Line)[] queries, int compactAt)
    {
        using var directory = new TempDirectory();
        StorageOptions Options() => new() { DataDirectory = directory.Path, CompactAtSegments = compactAt };
        var engine = StorageEngine.Open(Options());
        try
        {
            var model = new SortedDictionary<long, double>();
            ulong seq = 0;
            foreach (var (start, stride, values, action) in requests)
            {
                var steps = Enumerable.Range(0, values.Length).Select(i => (long)start + ((long)i * stride)).ToArray();
                engine.WriteAsync(Batch("w", ++seq, (Key(), steps, values))).AsTask().GetAwaiter().GetResult();
                for (var i = 0; i < steps.Length; i++)
                {
                    model[steps[i]] = values[i];
                }

                if (action == 1)
                {
                    engine.SealNowAsync().GetAwaiter().GetResult();
                }
                else if (action == 2)
                {
                    engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
                    engine = StorageEngine.Open(Options());
                }
            }

            var points = model.Select(p => (p.Key, p.Value)).ToArray();
            AssertEqual(Reference(points), engine.GetSummaryAsync(Key()).GetAwaiter().GetResult()!.Aggregate, "summary");
            foreach (var (buckets, from, length, line) in queries)
            {
                var grid = BucketGrid.Create(from, from + length, buckets);
                using var result = engine.DownsampleAsync(Key(), grid, line == 0 ? 0 : line + 2).GetAwaiter().GetResult()!;
                for (var b = 0; b < grid.Count; b++)
                {
                    var lo = grid.BucketStart(b);
                    var hi = grid.BucketEnd(b);
                    AssertEqual(Reference(points.Where(p => p.Key >= lo && p.Key <= hi).ToArray()), result.Buckets[b], $"bucket {b} [{lo}, {hi}]");
                }

                if (line > 0)
                {
                    CheckLine(points.Where(p => p.Key >= grid.Start && p.Key <= grid.End).ToArray(), result, line + 2);
                }
            }
        }
        finally
        {
            engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static void CheckLine((long Step, double Value)[] points, DownsampledSeries result, int requested)
    {
        var finite = points.Where(p => double.IsFinite(p.Value)).ToArray();
        var byStep = points.ToDictionary(p => p.Step, p => p.Value);
        Assert.Equal(result.LineSteps.Length, result.LineValues.Length);
        Assert.True(result.LineSteps.Length <= Math.Max(requested, 0) && result.LineSteps.Length <= finite.Length, $"{result.LineSteps.Length} line points for {requested} asked and {finite.Length} finite");
        for (var i = 0; i < result.LineSteps.Length; i++)
        {
            Assert.True(i == 0 || result.LineSteps[i] > result.LineSteps[i - 1], "line steps ascend");
            Assert.Equal(byStep[result.LineSteps[i]], result.LineValues[i]); // a real point
        }

        if (finite.Length <= requested)
        {
            Assert.Equal(finite.Select(p => p.Step), result.LineSteps);
        }
        else if (finite.Length > 0)
        {
            Assert.Equal(requested, result.LineSteps.Length);
            Assert.Equal(finite[0].Step, result.LineSteps[0]);
            Assert.Equal(finite[^1].Step, result.LineSteps[^1]);
        }
    }

    private static Aggregate Reference((long Step, double Value)[] points)
    {
        var a = Aggregate.Empty;
        foreach (var (step, value) in points)
        {
            a.Add(Aggregate.Scan([step], [value], [0], 0, 1));
        }

        return a;
    }

    private static void AssertEqual(Aggregate expected, Aggregate actual, string what)
    {
        Assert.True(
            (expected.Count, expected.NanCount, expected.InfCount) == (actual.Count, actual.NanCount, actual.InfCount),
            $"{what}: counts {(actual.Count, actual.NanCount, actual.InfCount)}, expected {(expected.Count, expected.NanCount, expected.InfCount)}");
        if (expected.Count == 0)
        {
            return;
        }

        Assert.True(
            (expected.FirstStep, expected.First, expected.LastStep, expected.Last).Equals((actual.FirstStep, actual.First, actual.LastStep, actual.Last)), // NaN equals NaN here
            $"{what}: first/last {(actual.FirstStep, actual.First, actual.LastStep, actual.Last)}, expected {(expected.FirstStep, expected.First, expected.LastStep, expected.Last)}");
        if (expected.FiniteCount == 0)
        {
            return;
        }

        Assert.True(
            (expected.Min, expected.MinStep, expected.Max, expected.MaxStep) == (actual.Min, actual.MinStep, actual.Max, actual.MaxStep),
            $"{what}: min/max {(actual.Min, actual.MinStep, actual.Max, actual.MaxStep)}, expected {(expected.Min, expected.MinStep, expected.Max, expected.MaxStep)}");

        // The sum is added in another order than a scan; float64 rounding bounds the difference.
        var scale = Math.Max(1, expected.FiniteCount * 1e3);
        Assert.True(Math.Abs(expected.Sum - actual.Sum) <= scale * 1e-12, $"{what}: sum {actual.Sum}, expected {expected.Sum}");
    }
}
