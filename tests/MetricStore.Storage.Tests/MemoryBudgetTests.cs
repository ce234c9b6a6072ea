using System.Diagnostics;
using MetricStore.Core;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>
/// The head and the query cache share <see cref="StorageOptions.MemoryBudgetBytes"/>: as writes
/// grow the head, the cache evicts down to what the head leaves, never below its floor; the chunks
/// a seal keeps for reuse count once, whether kept or back in the head.
/// </summary>
public sealed class MemoryBudgetTests
{
    private const int Series = 75;
    private const int PointsPerSeries = 8_000; // its head chunk stays under 16k points, so a seal keeps no chunk for reuse
    private const long EntryBytes = PointsPerSeries * 26L;
    private const long ChunkBytes = Head.SeriesHead.ChunkSize * 26L;
    private static readonly long s_fullChunk = new Head.HeadChunk(Head.SeriesHead.ChunkSize).MemoryBytes;
    private static readonly long s_firstChunk = new Head.HeadChunk(Head.SeriesHead.FirstChunkSize).MemoryBytes;

    [Fact]
    public async Task The_query_cache_gives_way_to_a_growing_head_down_to_its_floor()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        const long budget = 48L << 20;
        const long floor = 2L << 20;
        await using var engine = StorageEngine.Open(h.Options() with
        {
            SealThresholdPoints = 100_000_000, // seals only when asked
            MemoryBudgetBytes = budget,
            QueryCacheBytes = budget,
            QueryCacheFloorBytes = floor,
        });

        ulong seq = 0;
        for (var i = 0; i < Series; i++)
        {
            var (steps, values) = Range(0, PointsPerSeries, s => (s * 7) + i);
            await engine.WriteAsync(Batch("w", ++seq, (Key($"m{i}"), steps, values)));
        }

        await engine.SealNowAsync();
        Assert.Equal(0, engine.HeadBytes);
        await ReadAllAsync(engine);
        Assert.Equal(Series * EntryBytes, engine.QueryCache.Bytes); // 15.6 MB: all of it fits while the head is empty

        // 1.6M points in the head (25 chunks of 64k points: 41.8 MB, and 1.2 MB of the 16k and 32k
        // chunks it outgrew) leave the cache less than it holds: the least recently read row groups go.
        await WriteAsync(engine, "big", 1, 0, 1_600_000);
        Assert.Equal((25 * s_fullChunk) + (engine.HeadChunkReuse.KeptPoints * 26L), engine.HeadBytes); // the 16k and 32k chunks it outgrew are kept
        var capacity = budget - engine.HeadBytes - engine.PooledColumnBytes; // evicted columns wait for reuse in the budget too
        Assert.True(engine.PooledColumnBytes is > 0 and <= floor, $"{engine.PooledColumnBytes} bytes of evicted columns pooled");
        Assert.Equal(capacity, engine.QueryCacheCapacity());
        var cached = engine.QueryCache.Bytes;
        Assert.True(cached <= capacity && cached > capacity - EntryBytes, $"{cached} bytes cached with {capacity} left by the head");

        // A head over the whole budget leaves the cache its floor, and reads still answer exactly.
        await WriteAsync(engine, "big", 2, 1_600_000, 400_000);
        Assert.Equal(floor, engine.QueryCacheCapacity());
        Assert.True(engine.QueryCache.Bytes <= floor, $"{engine.QueryCache.Bytes} bytes cached over the floor of {floor}");
        await ReadAllAsync(engine);
        Assert.True(engine.QueryCache.Bytes is > 0 and <= floor, $"{engine.QueryCache.Bytes} bytes cached against a floor of {floor} after reading");

        // Sealed: the head's full chunks are kept for reuse and still count; reused, they count once.
        await engine.SealNowAsync();
        var kept = engine.HeadChunkReuse.KeptPoints / Head.SeriesHead.ChunkSize;
        Assert.True(kept >= 30, $"{kept} chunks kept after sealing 2M points");
        Assert.Equal(engine.HeadChunkReuse.KeptPoints * 26, engine.HeadBytes);
        var before = engine.HeadBytes;
        await WriteAsync(engine, "big2", 1, 0, 1_000_000);
        var keptAfter = engine.HeadChunkReuse.KeptPoints / Head.SeriesHead.ChunkSize;
        Assert.True(keptAfter < kept - 10, $"{keptAfter} of {kept} chunks still kept after 1M more points");
        Assert.True(Math.Abs(engine.HeadBytes - before) <= 2 * ChunkBytes, $"head {engine.HeadBytes} bytes after reusing chunks, {before} before");
    }

    [Fact]
    public async Task Kept_head_chunks_go_back_to_the_cache_once_writes_stop()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        const long budget = 96L << 20;
        var idle = TimeSpan.FromSeconds(2); // long enough that a loaded CI machine's seal and delays stay well inside it
        await using var engine = StorageEngine.Open(h.Options() with
        {
            SealThresholdPoints = 100_000_000, // seals only when asked
            MemoryBudgetBytes = budget,
            QueryCacheBytes = budget,
            QueryCacheFloorBytes = 2L << 20,
            KeptChunksIdleTime = idle,
        });

        // A seal keeps the head's full chunks for the next writes, inside the budget.
        await WriteAsync(engine, "big", 1, 0, 1_000_000);
        await engine.SealNowAsync();
        await WriteAsync(engine, "small", 1, 0, 1); // the idle time starts again here, not before the seal
        var kept = engine.HeadChunkReuse.KeptPoints;
        Assert.True(kept >= 15 * Head.SeriesHead.ChunkSize, $"{kept} points of chunks kept after sealing 1M points");
        Assert.Equal((kept * 26) + s_firstChunk, engine.HeadBytes); // the chunks, and the first chunk of the series with one unsealed point
        Assert.Equal(budget - engine.HeadBytes - engine.PooledColumnBytes, engine.QueryCacheCapacity());

        // Writes keep coming, each within the idle time of the last: the chunks stay.
        for (var i = 1; i < 5; i++)
        {
            await Task.Delay(idle / 4);
            await WriteAsync(engine, "small", (ulong)i + 1, i, 1);
        }

        Assert.Equal(kept, engine.HeadChunkReuse.KeptPoints);

        // No writes for the idle time: the writer lets them go, and the cache may use the budget.
        var waited = Stopwatch.StartNew();
        while (engine.HeadChunkReuse.KeptPoints > 0 && waited.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(50);
        }

        Assert.Equal(0, engine.HeadChunkReuse.KeptPoints);
        Assert.Equal(budget - engine.HeadBytes - engine.PooledColumnBytes, engine.QueryCacheCapacity());
        Assert.Equal(s_firstChunk, engine.HeadBytes); // the 5 unsealed points, in their series' first chunk

        // The next writes allocate chunks again, and reads see every point.
        await WriteAsync(engine, "big", 2, 1_000_000, 100_000);
        var points = await engine.ReadSeriesAsync(Key("big"));
        Assert.NotNull(points);
        Assert.Equal(1_100_000, points.Count);
        Assert.Equal(1_099_999, points.Values[points.Count - 1]);
    }

    private static async Task WriteAsync(StorageEngine engine, string writer, ulong seq, long from, int count)
    {
        var (steps, values) = Range(from, count, s => s);
        var result = await engine.WriteAsync(Batch(writer, seq, (Key(writer), steps, values)));
        Assert.Equal(WriteOutcome.Durable, result.Outcome);
    }

    private static async Task ReadAllAsync(StorageEngine engine)
    {
        for (var i = 0; i < Series; i++)
        {
            var points = await engine.ReadSeriesAsync(Key($"m{i}"));
            Assert.NotNull(points);
            Assert.Equal(PointsPerSeries, points.Count);
            Assert.Equal(((PointsPerSeries - 1) * 7.0) + i, points.Values[PointsPerSeries - 1]);
        }
    }
}
