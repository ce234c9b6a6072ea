using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>
/// A raw read of more than <see cref="StorageEngine.ScanRowGroups"/> sealed row groups (a scan)
/// decodes the row groups the query cache lacks into two columns of its own, one being read while
/// the next decodes, and reads the ones the cache holds from it: the cache keeps what dashboards
/// read, and a scan allocates no columns per row group.
/// </summary>
public sealed class ScanReadTests
{
    private const int PerSeal = 10_000;
    private const int Seals = 5;

    [Fact]
    public async Task A_scan_decodes_the_row_groups_the_cache_lacks_into_its_own_columns_and_leaves_the_cache_alone()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        await using var engine = await SealedSeriesAsync(h);
        var decoded = engine.SegmentReaderCounts.Decoded;
        var misses = engine.QueryCache.Misses;

        await AssertScanAsync(engine);
        Assert.Equal(decoded + Seals, engine.SegmentReaderCounts.Decoded);
        Assert.Equal(misses, engine.QueryCache.Misses);
        Assert.Equal(0, engine.QueryCache.Bytes);

        // The first scan gave its two columns back when it ended; the next one takes them.
        var reused = engine.HeadChunkReuse.ReusedColumns;
        await AssertScanAsync(engine);
        Assert.Equal(reused + 2, engine.HeadChunkReuse.ReusedColumns);
        Assert.Equal(decoded + (2 * Seals), engine.SegmentReaderCounts.Decoded);
        Assert.Equal(0, engine.QueryCache.Bytes);
    }

    [Fact]
    public async Task A_scan_reads_the_row_groups_the_cache_holds_from_the_cache()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        await using var engine = await SealedSeriesAsync(h);

        // A read of one row group is not a scan: it goes through the cache.
        for (var seal = 0; seal < Seals; seal++)
        {
            Assert.Equal(PerSeal, Read(engine, Key(), seal * PerSeal, ((seal + 1) * PerSeal) - 1)!.Count);
        }

        var (bytes, hits, misses) = engine.QueryCache;
        Assert.True(bytes > 0);
        Assert.Equal(Seals, misses);
        var decoded = engine.SegmentReaderCounts.Decoded;

        await AssertScanAsync(engine);
        Assert.Equal(decoded, engine.SegmentReaderCounts.Decoded);
        Assert.Equal(hits + Seals, engine.QueryCache.Hits);
        Assert.Equal(misses, engine.QueryCache.Misses);
    }

    /// <summary>One series sealed as <see cref="Seals"/> row groups in as many files (no compaction).</summary>
    private static async Task<StorageEngine> SealedSeriesAsync(EngineHarness h)
    {
        var engine = StorageEngine.Open(h.Options() with { CompactAtSegments = 1000 });
        for (var seal = 0; seal < Seals; seal++)
        {
            var (steps, values) = Range(seal * PerSeal, PerSeal, Value);
            await engine.WriteAsync(Batch("w", (ulong)seal + 1, (Key(), steps, values)));
            await engine.SealNowAsync();
        }

        return engine;
    }

    private static double Value(long step) => (step * 0.5) - 7;

    /// <summary>
    /// Reads the whole series slowly, so each next row group has decoded into the read's other
    /// columns while this one's slices are checked: a decode into the columns being read shows.
    /// </summary>
    private static async Task AssertScanAsync(StorageEngine engine)
    {
        long expected = 0;
        await foreach (var slice in engine.ReadPointsAsync(Key(), long.MinValue, long.MaxValue, PerSeal / 4))
        {
            await Task.Delay(2);
            for (var i = 0; i < slice.Count; i++, expected++)
            {
                Assert.Equal(expected, slice.Steps[i]);
                Assert.Equal(Value(expected), slice.Values[i]);
            }
        }

        Assert.Equal(Seals * PerSeal, expected);
    }
}
