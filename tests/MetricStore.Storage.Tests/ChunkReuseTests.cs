using MetricStore.Storage.Head;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>Sealed head chunks and evicted row-group columns are reused, but never while a reader can still see them.</summary>
public sealed class ChunkReuseTests
{
    private static List<HeadChunk> Chunks(int n) => [.. Enumerable.Range(0, n).Select(_ => new HeadChunk(SeriesHead.ChunkSize))];

    [Fact]
    public void A_retired_chunk_is_reused_only_after_every_reader_that_entered_before_it_left()
    {
        var recycler = new ChunkRecycler(maxChunks: 16);
        var early = recycler.EnterRead();
        var retired = Chunks(2);
        recycler.Retire(retired);
        var late = recycler.EnterRead(); // entered after the retirement: cannot see those chunks

        Assert.DoesNotContain(recycler.Rent(), retired); // the early reader may still read them
        Assert.Equal(0, recycler.Reused);

        recycler.ExitRead(early);
        var reused = new[] { recycler.Rent(), recycler.Rent() };
        Assert.Equal(retired.ToHashSet(), reused.ToHashSet()); // the late reader does not hold them back
        Assert.Equal(2, recycler.Reused);
        Assert.All(reused, c => Assert.Equal((0, 0, true), (c.Count, c.Valid, c.Sorted)));
        Assert.DoesNotContain(recycler.Rent(), retired); // none left: a new chunk
        recycler.ExitRead(late);
    }

    [Fact]
    public void A_reader_that_never_leaves_only_stops_reuse_and_the_kept_chunks_stay_bounded()
    {
        var recycler = new ChunkRecycler(maxChunks: 5);
        recycler.EnterRead(); // never exits
        for (var i = 0; i < 10; i++)
        {
            recycler.Retire(Chunks(2));
        }

        Assert.True(recycler.KeptPoints <= 5 * SeriesHead.ChunkSize, $"{recycler.KeptPoints} points of chunks kept");
        _ = recycler.Rent();
        Assert.Equal(0, recycler.Reused);

        // Chunks below the pooled sizes (a short series' first chunk) are left to the GC.
        var other = new ChunkRecycler(maxChunks: 5);
        other.Retire([new HeadChunk(256), new HeadChunk(ChunkRecycler.SmallestPooled / 2)]);
        Assert.Equal(0, other.KeptPoints);
    }

    [Fact]
    public void Over_the_bound_free_chunks_go_first_and_a_retired_seal_is_trimmed_not_dropped_whole()
    {
        var recycler = new ChunkRecycler(maxChunks: 4);
        recycler.Retire(Chunks(3)); // no reader: free at once
        var reader = recycler.EnterRead();
        var held = Chunks(3);
        recycler.Retire(held); // 6 kept: two free ones go
        Assert.Equal(4L * SeriesHead.ChunkSize, recycler.KeptPoints);
        recycler.ExitRead(reader);
        var rented = Enumerable.Range(0, 5).Select(_ => recycler.Rent()).ToList();
        Assert.Equal(4, recycler.Reused);
        Assert.Subset(rented.ToHashSet(), held.ToHashSet());

        // With a reader that never leaves, the oldest retired seal gives up only what is over the bound.
        var stuck = new ChunkRecycler(maxChunks: 4);
        stuck.EnterRead();
        stuck.Retire(Chunks(3));
        stuck.Retire(Chunks(3));
        Assert.Equal(4L * SeriesHead.ChunkSize, stuck.KeptPoints);
    }

    [Fact]
    public void Outgrown_chunks_of_the_pooled_sizes_are_kept_and_rented_again_by_size()
    {
        var recycler = new ChunkRecycler(maxChunks: 4);
        var small = new HeadChunk(ChunkRecycler.SmallestPooled);
        var middle = new HeadChunk(ChunkRecycler.SmallestPooled * 2);
        recycler.Retire([small, middle]);
        Assert.Equal(3L * ChunkRecycler.SmallestPooled, recycler.KeptPoints);

        Assert.Same(middle, recycler.Rent(ChunkRecycler.SmallestPooled * 2));
        Assert.NotSame(small, recycler.Rent()); // full size: a new chunk
        Assert.Same(small, recycler.Rent(ChunkRecycler.SmallestPooled));
        Assert.Equal((0L, 2L), (recycler.KeptPoints, recycler.Reused));
        Assert.Throws<ArgumentOutOfRangeException>(() => recycler.Rent(1000));
    }

    [Fact]
    public async Task A_read_held_open_keeps_an_outgrown_chunk_while_the_series_grows_and_others_reuse_that_size()
    {
        await using var h = EngineHarness.Open();
        const int First = 20_000; // in a 32k-point chunk, the copy of the 16k one it outgrew
        var (steps, values) = Range(0, 2 * First, s => s * 0.5);
        await h.Engine.WriteAsync(Batch("w", 1, (Key("held"), steps[..First], values[..First])));
        var reader = h.Engine.ReadPointsAsync(Key("held"), 0, long.MaxValue, 1000).GetAsyncEnumerator();
        Assert.True(await reader.MoveNextAsync());
        var slice = reader.Current;

        // The series outgrows its 32k chunk (copied into a 64k one, the 32k one retired), and other
        // series grow through 16k and 32k chunks: they would take the outgrown one if the open
        // reader did not hold it, and write over its points.
        await h.Engine.WriteAsync(Batch("w", 2, (Key("held"), steps[First..], values[First..])));
        ulong seq = 2;
        for (var i = 0; i < 4; i++)
        {
            var (other, otherValues) = Range(0, 2 * First, s => -1.0);
            await h.Engine.WriteAsync(Batch("w", ++seq, (Key($"other{i}"), other, otherValues)));
        }

        Assert.Equal(values.AsSpan(0, 1000).ToArray(), slice.Values.ToArray());
        Assert.Equal(steps.AsSpan(0, 1000).ToArray(), slice.Steps.ToArray());
        await reader.DisposeAsync();

        // With the reader gone, a growing series takes outgrown chunks, and every read stays exact.
        var before = h.Engine.HeadChunkReuse.Reused;
        var (late, lateValues) = Range(0, 2 * First, s => s + 7.0);
        await h.Engine.WriteAsync(Batch("w", ++seq, (Key("late"), late, lateValues)));
        Assert.True(h.Engine.HeadChunkReuse.Reused >= before + 2, $"reused {h.Engine.HeadChunkReuse.Reused - before} chunks");
        Assert.Equal(values, h.Read(Key("held"))!.Values);
        Assert.Equal(lateValues, h.Read(Key("late"))!.Values);
        Assert.Equal(-1.0, h.Read(Key("other3"), 0, 0)!.Values[0]);
    }

    [Fact]
    public async Task A_read_held_open_across_seals_keeps_its_points_while_new_writes_reuse_sealed_chunks()
    {
        await using var h = EngineHarness.Open();
        const int N = 4 * SeriesHead.ChunkSize;
        var (steps, values) = Range(0, N, s => s * 0.5);
        await h.Engine.WriteAsync(Batch("w", 1, (Key("held"), steps, values)));

        // A streaming reader is inside the head's chunks (slices point into them, no copy).
        var reader = h.Engine.ReadPointsAsync(Key("held"), 0, long.MaxValue, 1000).GetAsyncEnumerator();
        Assert.True(await reader.MoveNextAsync());
        var slice = reader.Current;

        // Seal those chunks away and write other points through several seals, so that the
        // recycler would hand them out again if the open reader did not hold them.
        await h.Engine.SealNowAsync();
        ulong seq = 1;
        for (var round = 0; round < 3; round++)
        {
            var (more, moreValues) = Range(round * N, N, s => -1.0);
            await h.Engine.WriteAsync(Batch("w", ++seq, (Key("other"), more, moreValues)));
            await h.Engine.SealNowAsync();
        }

        // The open reader still sees what it was given, and reads the rest of the series exactly.
        Assert.Equal(values.AsSpan(0, 1000).ToArray(), slice.Values.ToArray());
        Assert.Equal(steps.AsSpan(0, 1000).ToArray(), slice.Steps.ToArray());
        var read = new List<double>(slice.Values.ToArray());
        while (await reader.MoveNextAsync())
        {
            read.AddRange(reader.Current.Values.ToArray());
        }

        await reader.DisposeAsync();
        Assert.Equal(values, read);

        // With the reader gone the sealed chunks are reused, and every read stays exact.
        var before = h.Engine.HeadChunkReuse.Reused;
        var (last, lastValues) = Range(10 * N, N, s => s);
        await h.Engine.WriteAsync(Batch("w", ++seq, (Key("other"), last, lastValues)));
        // After a seal a series starts small again; its second to fourth 64k chunks are reused ones.
        Assert.True(h.Engine.HeadChunkReuse.Reused >= before + 3, $"reused {h.Engine.HeadChunkReuse.Reused - before} chunks");
        Assert.Equal(values, h.Read(Key("held"))!.Values.AsSpan(0, N).ToArray());
        Assert.Equal(lastValues, h.Read(Key("other"), 10 * N, long.MaxValue)!.Values.AsSpan(0, N).ToArray());
        Assert.Equal(-1.0, h.Read(Key("other"), 0, 0)!.Values[0]);
    }

    [Fact]
    public void Returned_columns_are_reused_only_for_a_close_size_and_within_the_bound()
    {
        var recycler = new ChunkRecycler(maxChunks: 16, maxColumnBytes: 3 * 1000 * 24);
        var evicted = new SeriesColumns(1000);
        recycler.EnterRead(); // readers do not hold returned columns: the cache pins what a read holds
        recycler.ReturnColumns(evicted);
        Assert.Null(recycler.RentColumns(1001)); // too small
        Assert.Null(recycler.RentColumns(500)); // twice as large as needed
        Assert.Same(evicted, recycler.RentColumns(501));
        Assert.Equal((1, 0L), (recycler.ReusedColumns, recycler.ColumnBytes));

        // Past the bound the oldest free columns make room.
        var bounded = new ChunkRecycler(maxChunks: 16, maxColumnBytes: 2 * 1000 * 24);
        var a = new SeriesColumns(1000);
        var b = new SeriesColumns(1000);
        var c = new SeriesColumns(1000);
        bounded.ReturnColumns(a);
        bounded.ReturnColumns(b);
        bounded.ReturnColumns(c); // a, the oldest, makes room
        Assert.Equal(2 * 1000 * 24, bounded.ColumnBytes);
        Assert.Same(c, bounded.RentColumns(1000)); // the most recently returned first
        Assert.Same(b, bounded.RentColumns(1000));
        Assert.Null(bounded.RentColumns(1000)); // a went to the GC

        // Columns larger than the whole bound are not kept.
        bounded.ReturnColumns(new SeriesColumns(3000));
        Assert.Equal(0, bounded.ColumnBytes);
    }

    [Fact]
    public async Task A_read_held_open_pins_only_its_own_row_group_while_other_reads_evict_it_and_reuse_columns()
    {
        await using var h = EngineHarness.Open();
        await using var engine = await OpenWithSealedSeriesAsync(h, 8);

        // Two held readers' slices point into the cached columns of m0 (taken by a miss) and m1
        // (taken by a hit: read once before).
        Assert.Equal(SealedPoints, (await engine.ReadSeriesAsync(Key("m1")))!.Count);
        var held = new[] { engine.ReadPointsAsync(Key("m0"), 0, long.MaxValue, 1000).GetAsyncEnumerator(), engine.ReadPointsAsync(Key("m1"), 0, long.MaxValue, 1000).GetAsyncEnumerator() };
        var slices = new PointSlice[2];
        for (var i = 0; i < 2; i++)
        {
            Assert.True(await held[i].MoveNextAsync());
            slices[i] = held[i].Current;
        }

        // Other reads evict m0 and m1 (the cache holds two row groups) and each other. The held
        // readers pin only their own: the others' misses decode into each other's evicted columns,
        // never into m0's or m1's, and those count against the budget while held.
        await ReadOthersAsync(engine, SealedPoints, first: 2);
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(Enumerable.Range(0, 1000).Select(s => (i * 1_000_000.0) + s), slices[i].Values.ToArray());
        }

        Assert.True(engine.HeadChunkReuse.ReusedColumns > 0, "an open read kept other reads' evicted columns from reuse");
        Assert.True(engine.PooledColumnBytes >= 2 * SealedRowGroupBytes, $"{engine.PooledColumnBytes} bytes pooled or held");
        for (var i = 0; i < 2; i++)
        {
            var read = new List<double>(slices[i].Values.ToArray());
            while (await held[i].MoveNextAsync())
            {
                read.AddRange(held[i].Current.Values.ToArray());
            }

            await held[i].DisposeAsync();
            Assert.Equal(Enumerable.Range(0, SealedPoints).Select(s => (i * 1_000_000.0) + s), read);
        }

        // Let go, their columns are free: the next miss (m2; the cache holds m6 and m7) decodes into
        // m1's, the last returned, and every read stays exact.
        await using (var next = engine.ReadPointsAsync(Key("m2"), 0, long.MaxValue, 1000).GetAsyncEnumerator())
        {
            Assert.True(await next.MoveNextAsync());
            Assert.Same(slices[1].Source, next.Current.Source);
            Assert.Equal(Enumerable.Range(0, 1000).Select(s => 2_000_000.0 + s), next.Current.Values.ToArray());
        }

        await ReadOthersAsync(engine, SealedPoints, first: 0);
    }

    [Fact]
    public async Task A_read_of_a_row_group_evicted_while_another_read_holds_it_shares_those_columns()
    {
        await using var h = EngineHarness.Open();
        await using var engine = await OpenWithSealedSeriesAsync(h, 4);

        // The first read holds m0; two other row groups evict it from the cache.
        await using var first = engine.ReadPointsAsync(Key("m0"), 0, long.MaxValue, 1000).GetAsyncEnumerator();
        Assert.True(await first.MoveNextAsync());
        var held = first.Current.Source;
        Assert.Equal(SealedPoints, (await engine.ReadSeriesAsync(Key("m1")))!.Count);
        Assert.Equal(SealedPoints, (await engine.ReadSeriesAsync(Key("m2")))!.Count);
        Assert.Equal(3, engine.QueryCache.Misses);
        Assert.Equal(SealedRowGroupBytes, engine.HeldEvictedBytes);

        // A second read of m0 takes the held columns: no decode, no second copy.
        var second = new List<double>();
        await using (var read = engine.ReadPointsAsync(Key("m0"), 0, long.MaxValue, 1000).GetAsyncEnumerator())
        {
            Assert.True(await read.MoveNextAsync());
            Assert.Same(held, read.Current.Source);
            Assert.Equal(3, engine.QueryCache.Misses);
            Assert.Equal(SealedRowGroupBytes, engine.HeldEvictedBytes);
            do
            {
                second.AddRange(read.Current.Values.ToArray());
            }
            while (await read.MoveNextAsync());
        }

        Assert.Equal(Enumerable.Range(0, SealedPoints).Select(s => (double)s), second);
        Assert.Equal(SealedRowGroupBytes, engine.HeldEvictedBytes); // the first read still holds it

        // Once the first lets go, the columns go back for reuse and m0 is decoded again when read.
        await first.DisposeAsync();
        Assert.Equal(0, engine.HeldEvictedBytes);
        await using (var next = engine.ReadPointsAsync(Key("m3"), 0, long.MaxValue, 1000).GetAsyncEnumerator())
        {
            Assert.True(await next.MoveNextAsync());
            Assert.Same(held, next.Current.Source);
            Assert.Equal(Enumerable.Range(0, 1000).Select(s => 3_000_000.0 + s), next.Current.Values.ToArray());
        }

        Assert.Equal(SealedPoints, (await engine.ReadSeriesAsync(Key("m0")))!.Count);
        Assert.Equal(5, engine.QueryCache.Misses);
    }

    private const int SealedPoints = 50_000; // one row group per series

    private const long SealedRowGroupBytes = (57_344 * 24L) + (SealedPoints * 2L); // capacity rounded up to 7 x 8192 points

    /// <summary>
    /// An engine on <paramref name="h"/>'s directory whose query cache holds two row groups, with
    /// series m0 to m(count - 1) sealed, one row group each of <see cref="SealedPoints"/> steps, value
    /// i·1,000,000 + step.
    /// </summary>
    private static async Task<StorageEngine> OpenWithSealedSeriesAsync(EngineHarness h, int count)
    {
        await h.CloseAsync();
        var engine = StorageEngine.Open(h.Options() with { QueryCacheBytes = 2 * SealedRowGroupBytes, QueryCacheFloorBytes = 2 * SealedRowGroupBytes });
        ulong seq = 0;
        for (var i = 0; i < count; i++)
        {
            var (steps, values) = Range(0, SealedPoints, s => (i * 1_000_000) + s);
            await engine.WriteAsync(Batch("w", ++seq, (Key($"m{i}"), steps, values)));
        }

        await engine.SealNowAsync();
        return engine;
    }

    /// <summary>
    /// Cache misses allocate columns rounded up to a multiple of 8192 points
    /// (<see cref="ChunkRecycler.ColumnCapacity"/>), so a row group a few points larger than an
    /// evicted one decodes into its columns.
    /// </summary>
    [Fact]
    public async Task A_miss_reuses_the_columns_of_an_evicted_row_group_a_few_points_smaller()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        const int Points = 20_000;
        const long entry = (24_576 * 24L) + ((Points + 4) * 2L); // capacity rounded up to 3 x 8192
        await using var engine = StorageEngine.Open(h.Options() with { QueryCacheBytes = entry + 1000, QueryCacheFloorBytes = entry + 1000 });
        ulong seq = 0;
        for (var i = 0; i < 3; i++)
        {
            var (steps, values) = Range(0, Points + (i == 0 ? 0 : 4), s => (i * 1_000_000) + s);
            await engine.WriteAsync(Batch("w", ++seq, (Key($"m{i}"), steps, values)));
        }

        await engine.SealNowAsync();

        // m0 (20,000 points) misses; m1 (20,004) misses and evicts it; m2 (20,004) takes m0's columns.
        for (var i = 0; i < 3; i++)
        {
            var read = (await engine.ReadSeriesAsync(Key($"m{i}")))!;
            Assert.Equal(Enumerable.Range(0, Points + (i == 0 ? 0 : 4)).Select(s => (i * 1_000_000.0) + s), read.Values.AsSpan(0, read.Count).ToArray());
            Assert.Equal(i == 2 ? 1 : 0, engine.HeadChunkReuse.ReusedColumns);
        }

        Assert.Equal(8192, ChunkRecycler.ColumnCapacity(8192));
        Assert.Equal(24_576, ChunkRecycler.ColumnCapacity(Points + 4));
    }

    private static async Task ReadOthersAsync(StorageEngine engine, int points, int first)
    {
        for (var round = 0; round < 3; round++)
        {
            for (var i = first; i < 8; i++)
            {
                var read = (await engine.ReadSeriesAsync(Key($"m{i}")))!;
                Assert.Equal(Enumerable.Range(0, points).Select(s => (i * 1_000_000.0) + s), read.Values.AsSpan(0, read.Count).ToArray());
            }
        }
    }

    [Fact]
    public void A_reset_chunk_is_float32_exact_again_and_a_copy_keeps_whether_it_was()
    {
        var chunk = new HeadChunk(256);
        chunk.Columns.Steps[0] = 1;
        chunk.Columns.Values[0] = Math.PI; // not a float32
        chunk.Appended(0, 1, float32Origin: false);
        chunk.Columns.Steps[1] = 2;
        chunk.Columns.Values[1] = 0.5;
        chunk.Appended(1, 1, float32Origin: true);
        Assert.False(chunk.Float32Exact);

        var larger = new HeadChunk(1024);
        larger.CopyFrom(chunk);
        Assert.False(larger.Float32Exact);

        chunk.Reset();
        Assert.True(chunk.Float32Exact);
        chunk.Columns.Steps[0] = 1;
        chunk.Columns.Values[0] = 0.25;
        chunk.Appended(0, 1, float32Origin: false); // checked: exact
        Assert.True(chunk.Float32Exact);
    }
}
