using MetricStore.Storage.Head;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>Sealed head chunks are reused, but never while a reader can still see them.</summary>
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

        Assert.True(recycler.Kept <= 5, $"{recycler.Kept} chunks kept");
        _ = recycler.Rent();
        Assert.Equal(0, recycler.Reused);

        // Chunks below full size (a short series' first chunk) are left to the GC.
        var other = new ChunkRecycler(maxChunks: 5);
        other.Retire([new HeadChunk(256)]);
        Assert.Equal(0, other.Kept);
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
}
