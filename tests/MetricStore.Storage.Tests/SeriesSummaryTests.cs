using MetricStore.Core;
using MetricStore.Storage.Head;
using MetricStore.Storage.Query;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>
/// The summary a series keeps while its steps only grow (last value, min, max, count: run tables
/// and run search read it) is not a scan at every append: it is the points folded in so far plus the
/// chunk being appended, read from that chunk's rollup when asked.
/// </summary>
public sealed class SeriesSummaryTests
{
    [Fact]
    public void The_kept_summary_equals_a_scan_of_every_point_through_chunk_growth_full_chunks_and_freezes()
    {
        var random = new Random(20261128);
        var recycler = new ChunkRecycler(maxChunks: 16);
        var head = new SeriesHead(0, Key(), recycler);
        var steps = new List<long>();
        var values = new List<double>();
        var timestamps = new List<long>();
        long step = -5;
        var freezes = 0;
        for (var batch = 0; batch < 150; batch++)
        {
            // 1..4000 points: the series grows through every chunk size into several full chunks.
            var n = random.Next(1, 4001);
            var s = new long[n];
            var v = new double[n];
            var t = new long[n];
            for (var i = 0; i < n; i++)
            {
                step += random.Next(1, 4);
                s[i] = step;
                v[i] = random.Next(200) switch
                {
                    0 => double.NaN,
                    1 => double.PositiveInfinity,
                    2 => double.NegativeInfinity,
                    _ => Math.Round((random.NextDouble() * 100) - 50, 3),
                };
                t[i] = 1_700_000_000_000 + step;
            }

            head.Append(new SeriesPoints { Key = Key(), Count = n, Steps = s, Values = v, Timestamps = t });
            steps.AddRange(s);
            values.AddRange(v);
            timestamps.AddRange(t);

            if (random.Next(10) == 0 && head.Freeze() is not null)
            {
                // As a seal does; the chunks go back to the pool and later appends reuse them.
                recycler.Retire(head.CompleteSeal([]));
                freezes++;
            }

            Assert.True(head.TryGetSummary(out var kept), $"batch {batch}: the summary went stale");
            var expected = Aggregate.Scan([.. steps], [.. values], [.. timestamps], 0, steps.Count);
            Assert.Equal(
                (expected.Count, expected.NanCount, expected.InfCount, expected.Min, expected.MinStep, expected.Max, expected.MaxStep),
                (kept.Count, kept.NanCount, kept.InfCount, kept.Min, kept.MinStep, kept.Max, kept.MaxStep));
            Assert.Equal(
                (expected.FirstStep, expected.First, expected.LastStep, expected.Last, expected.LastTimestamp),
                (kept.FirstStep, kept.First, kept.LastStep, kept.Last, kept.LastTimestamp));
            Assert.Equal(expected.Sum, kept.Sum, Math.Abs(expected.Sum) * 1e-12);
        }

        Assert.True(steps.Count > 3 * SeriesHead.ChunkSize, $"{steps.Count} points: not past three full chunks");
        Assert.True(freezes >= 5, $"{freezes} freezes");
    }

    [Fact]
    public void A_step_at_or_before_the_last_makes_the_kept_summary_stale_also_across_chunks()
    {
        var head = new SeriesHead(0, Key(), new ChunkRecycler(maxChunks: 16));
        var (steps, values) = Range(0, SeriesHead.ChunkSize, x => x);
        head.Append(new SeriesPoints { Key = Key(), Count = steps.Length, Steps = steps, Values = values, Timestamps = new long[steps.Length] });
        Assert.True(head.TryGetSummary(out var full));
        Assert.Equal(SeriesHead.ChunkSize, full.Count);

        // The first chunk is full: this point starts the next one, and repeats the last step.
        head.Append(new SeriesPoints { Key = Key(), Count = 1, Steps = [SeriesHead.ChunkSize - 1], Values = [7.0], Timestamps = [0] });
        Assert.False(head.TryGetSummary(out _));

        // A query recomputes it (last write wins) and the series keeps it; it knows the last step,
        // also when the next point starts a chunk of its own (after a seal).
        var recomputed = full;
        recomputed.Last = 7.0;
        Assert.NotNull(head.Freeze());
        head.CompleteSeal([]);
        head.SetSummary(recomputed, head.Snapshot().Version);
        Assert.True(head.TryGetSummary(out var kept));
        Assert.Equal((SeriesHead.ChunkSize - 1L, 7.0), (kept.LastStep, kept.Last));
        head.Append(new SeriesPoints { Key = Key(), Count = 1, Steps = [SeriesHead.ChunkSize - 1], Values = [8.0], Timestamps = [0] });
        Assert.False(head.TryGetSummary(out _));

        // Kept again, it grows with a later step.
        head.SetSummary(recomputed, head.Snapshot().Version);
        head.Append(new SeriesPoints { Key = Key(), Count = 1, Steps = [SeriesHead.ChunkSize + 5], Values = [1.0], Timestamps = [0] });
        Assert.True(head.TryGetSummary(out kept));
        Assert.Equal((SeriesHead.ChunkSize + 1L, SeriesHead.ChunkSize + 5L, 1.0), (kept.Count, kept.LastStep, kept.Last));

        // A summary set for the current version replaces the kept one whole (a point of the chunk
        // being appended is not counted twice).
        head.SetSummary(kept, head.Snapshot().Version);
        Assert.True(head.TryGetSummary(out var again));
        Assert.Equal(kept.Count, again.Count);
    }
}
