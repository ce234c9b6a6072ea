using MetricStore.Core;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

public sealed class StorageEngineTests
{
    [Fact]
    public async Task Written_points_are_read_back_sorted_by_step()
    {
        await using var h = EngineHarness.Open();
        var (steps, values) = Range(0, 1000, s => s * 0.5);
        var result = await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        Assert.Equal(new WriteResult(WriteOutcome.Durable, 1), result);

        var read = h.Read(Key())!;
        Assert.Equal(1000, read.Count);
        Assert.Equal(steps, read.Steps.AsSpan(0, read.Count).ToArray());
        Assert.Equal(values, read.Values.AsSpan(0, read.Count).ToArray());
        Assert.Equal(1_700_000_000_001, read.Timestamps[999]);
        Assert.Equal(1000, h.Engine.PointsWritten);
    }

    [Fact]
    public async Task A_retried_seq_is_a_no_op_and_cannot_undo_a_later_write()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), [5], [1.0])));
        await h.Engine.WriteAsync(Batch("w", 2, (Key(), [5], [2.0])));
        var retry = await h.Engine.WriteAsync(Batch("w", 1, (Key(), [5], [1.0])));
        Assert.Equal(new WriteResult(WriteOutcome.Duplicate, 2), retry);
        Assert.Equal(2.0, h.Read(Key())!.Values[0]);
    }

    [Fact]
    public async Task A_seq_that_skips_ahead_is_refused_and_stores_nothing()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), [1], [1.0])));
        var gap = await h.Engine.WriteAsync(Batch("w", 3, (Key(), [3], [3.0])));
        Assert.Equal(new WriteResult(WriteOutcome.Gap, 1), gap);
        Assert.Equal(1, h.Read(Key())!.Count);
    }

    [Fact]
    public async Task Writers_are_independent()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("a", 1, (Key("x"), [1], [1.0])));
        await h.Engine.WriteAsync(Batch("b", 1, (Key("y"), [1], [2.0])));
        Assert.Equal(1ul, h.Engine.DurableSeq("a"));
        Assert.Equal(1ul, h.Engine.DurableSeq("b"));
        Assert.Equal(0ul, h.Engine.DurableSeq("c"));
        Assert.Equal(["x", "y"], h.Engine.ListSeries(RunA).Select(k => k.Metric));
    }

    [Fact]
    public async Task Relogged_steps_replace_old_values_last_write_wins()
    {
        await using var h = EngineHarness.Open();
        var (steps, values) = Range(0, 100, s => s);
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        // A run resumed from the checkpoint at step 50 re-logs steps 50..149 with new values.
        var (resumed, newValues) = Range(50, 100, s => -s);
        await h.Engine.WriteAsync(Batch("w", 2, (Key(), resumed, newValues)));

        var read = h.Read(Key())!;
        Assert.Equal(150, read.Count);
        for (var i = 0; i < 150; i++)
        {
            Assert.Equal(i, read.Steps[i]);
            Assert.Equal(i < 50 ? i : -i, read.Values[i]);
        }
    }

    [Fact]
    public async Task Labels_make_distinct_series()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(rank: "0"), [1], [10.0]), (Key(rank: "1"), [1], [11.0])));
        Assert.Equal(10.0, h.Read(Key(rank: "0"))!.Values[0]);
        Assert.Equal(11.0, h.Read(Key(rank: "1"))!.Values[0]);
        Assert.Null(h.Read(Key(rank: "2")));
    }

    [Fact]
    public async Task Step_range_reads_include_both_ends()
    {
        await using var h = EngineHarness.Open();
        var (steps, values) = Range(0, 100, s => s);
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        var read = h.Read(Key(), 10, 19)!;
        Assert.Equal(10, read.Count);
        Assert.Equal(10, read.Steps[0]);
        Assert.Equal(19, read.Steps[9]);
    }

    [Fact]
    public async Task Concurrent_writers_all_become_durable_with_their_seqs_in_order()
    {
        await using var h = EngineHarness.Open();
        const int Writers = 8;
        const int Requests = 50;
        await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            for (ulong seq = 1; seq <= Requests; seq++)
            {
                var (steps, values) = Range((long)seq * 100, 100, s => s + w);
                var result = await h.Engine.WriteAsync(Batch($"w{w}", seq, (Key(rank: w.ToString(System.Globalization.CultureInfo.InvariantCulture)), steps, values)));
                Assert.Equal(WriteOutcome.Durable, result.Outcome);
            }
        })));

        for (var w = 0; w < Writers; w++)
        {
            Assert.Equal((ulong)Requests, h.Engine.DurableSeq($"w{w}"));
            Assert.Equal(Requests * 100, h.Read(Key(rank: w.ToString(System.Globalization.CultureInfo.InvariantCulture)))!.Count);
        }

    }
}
