using MetricStore.Storage.Head;
using MetricStore.Tests;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>
/// Long raw reads. A raw read of more than <see cref="StorageEngine.ScanRowGroups"/> sealed row groups (a scan)
/// decodes the row groups the query cache lacks into two columns of its own, one being read while
/// the next decodes, and reads the ones the cache holds from it: the cache keeps what dashboards
/// read, and a scan allocates no columns per row group.
/// </summary>
public sealed class ScanReadTests
{
    private const int PerSeal = 10_000;
    private const int Seals = StorageEngine.ScanRowGroups + 2;

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

    /// <summary>
    /// A read of a few row groups that would take more than the cache holds now is a scan too: under
    /// ingest the cache sits at its floor, and a full read of a 10M-step series (10 row groups) used
    /// to push everything out of it and decode 240 MB into new columns every time.
    /// </summary>
    [Fact]
    public async Task A_read_of_few_row_groups_larger_than_the_cache_now_is_a_scan()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        const long cache = 5L * PerSeal * 26; // five row groups' points and rollups
        await using var engine = await SealedSeriesAsync(h, h.Options() with { CompactAtSegments = 1000, QueryCacheBytes = cache, QueryCacheFloorBytes = cache });

        // Three row groups fit: through the cache.
        Assert.Equal(3 * PerSeal, Read(engine, Key(), 0, (3 * PerSeal) - 1)!.Count);
        Assert.Equal(3, engine.QueryCache.Misses);

        // Six, of which the cache holds three: the three it lacks fit, so through the cache.
        Assert.Equal(6 * PerSeal, Read(engine, Key(), 0, (6 * PerSeal) - 1)!.Count);
        var (bytes, hits, misses) = engine.QueryCache;
        Assert.Equal((3L, 6L), (hits, misses));
        var decoded = engine.SegmentReaderCounts.Decoded;

        // Six the cache lacks would not fit (far fewer than ScanRowGroups): a scan, every point exact.
        var scanned = Read(engine, Key(), 6 * PerSeal, (12 * PerSeal) - 1)!;
        Assert.Equal(Enumerable.Range(6 * PerSeal, 6 * PerSeal).Select(s => Value(s)), scanned.Values.AsSpan(0, scanned.Count).ToArray());
        Assert.Equal((bytes, misses), (engine.QueryCache.Bytes, engine.QueryCache.Misses));
        Assert.Equal(decoded + 6, engine.SegmentReaderCounts.Decoded);
    }

    /// <summary>
    /// Each window decides again whether a read is a scan. A read that began while the cache held
    /// its row groups becomes a scan at its next window once the head has grown and the cache has
    /// shrunk: it no longer decodes its misses into the cache (under ingest, sixteen such reads each
    /// held their own copies).
    /// </summary>
    [Fact]
    public async Task A_read_that_began_through_the_cache_becomes_a_scan_when_the_cache_shrinks()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        const int Groups = 12; // fewer than ScanRowGroups
        var entry = ((long)ChunkRecycler.ColumnCapacity(PerSeal) * HeadChunk.ColumnBytesPerPoint) + (PerSeal * HeadChunk.RollupBytesPerPoint);
        var budget = (Seals + 2) * entry;
        await using var engine = await SealedSeriesAsync(h, h.Options() with
        {
            CompactAtSegments = 1000,
            SealThresholdPoints = 100_000_000,
            MemoryBudgetBytes = budget,
            QueryCacheBytes = budget,
            QueryCacheFloorBytes = 3 * entry,
            ReadWindowPoints = 2 * PerSeal,
        });
        const long last = (Groups * PerSeal) - 1;
        Assert.Equal(Groups * PerSeal, Read(engine, Key(), 0, last)!.Count);
        Assert.Equal(Groups, engine.QueryCache.Misses);

        long expected = 0;
        await using (var read = engine.ReadPointsAsync(Key(), 0, last, 1000).GetAsyncEnumerator())
        {
            Assert.True(await read.MoveNextAsync()); // its first window, through the cache

            // Writes fill the head past the budget: the cache gives way down to its floor.
            var (steps, values) = Range(0, (int)(budget / HeadChunk.BytesPerPoint), s => s);
            await engine.WriteAsync(Batch("other", 1, (Key("other"), steps, values)));
            Assert.Equal(3 * entry, engine.QueryCacheCapacity());
            var decoded = engine.SegmentReaderCounts.Decoded;
            do
            {
                var slice = read.Current;
                for (var i = 0; i < slice.Count; i++, expected++)
                {
                    Assert.Equal(expected, slice.Steps[i]);
                    Assert.Equal(Value(expected), slice.Values[i]);
                }
            }
            while (await read.MoveNextAsync());

            Assert.True(engine.SegmentReaderCounts.Decoded > decoded + 5, $"{engine.SegmentReaderCounts.Decoded - decoded} row groups decoded after the cache shrank");
        }

        Assert.Equal(Groups * PerSeal, expected);
        Assert.Equal(Groups, engine.QueryCache.Misses); // the rest were decoded by the scan, not into the cache
    }

    /// <summary>
    /// A long read holds its read scope for a window of points at a time, not for the whole read:
    /// the files a compaction replaced go once the read has moved past the window that may list
    /// them, while it is still reading, and the read goes on from the compacted file, every point
    /// once and in order (and, being a new snapshot, with what was written meanwhile).
    /// </summary>
    [Fact]
    public async Task A_long_read_lets_go_of_replaced_files_when_it_moves_past_its_window()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        await using var engine = await SealedSeriesAsync(h, h.Options() with { CompactAtSegments = Seals + 1, ReadWindowPoints = (PerSeal * 3) / 2 });
        var before = PointFiles(h);
        Assert.Equal(Seals, before.Length);

        var read = engine.ReadPointsAsync(Key(), long.MinValue, long.MaxValue, PerSeal / 4).GetAsyncEnumerator();
        long expected = 0;
        async Task<bool> NextAsync()
        {
            if (!await read.MoveNextAsync())
            {
                return false;
            }

            for (var i = 0; i < read.Current.Count; i++, expected++)
            {
                Assert.Equal(expected, read.Current.Steps[i]);
                Assert.Equal(Value(expected), read.Current.Values[i]);
            }

            return true;
        }

        Assert.True(await NextAsync());

        // One more seal: the compaction replaces all the files while the read is in its first window.
        var (steps, values) = Range(Seals * PerSeal, PerSeal, Value);
        await engine.WriteAsync(Batch("w", Seals + 1, (Key(), steps, values)));
        await engine.SealNowAsync();
        await engine.CompactionIdleAsync();
        Assert.Equal(1, engine.Compactions);
        Assert.All(before, f => Assert.Contains(f, PointFiles(h))); // the first window may still open them

        // The first window is two row groups (20,000 points >= 15,000); read into the second, which
        // starts at step 20,000.
        while (expected <= 2 * PerSeal)
        {
            Assert.True(await NextAsync());
        }

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (PointFiles(h).Intersect(before).Any() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Empty(PointFiles(h).Intersect(before)); // gone while the read is still open
        while (await NextAsync())
        {
        }

        await read.DisposeAsync();
        Assert.Equal((Seals + 1) * PerSeal, expected);
    }

    /// <summary>
    /// Scans take their columns from one bound over all of them (<see cref="StorageOptions.ScanMemoryBytes"/>):
    /// six slow scans at once, with room for two sets of columns, hold two sets at most, every one
    /// reads every point exactly, and all of it is given back when they end.
    /// </summary>
    [Fact]
    public async Task Concurrent_scans_hold_no_more_columns_than_the_scan_memory_and_read_every_point()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        await using var engine = await SealedSeriesAsync(h, h.Options() with { CompactAtSegments = 1000, ScanMemoryBytes = 2 * s_setBytes });

        await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() => AssertScanAsync(engine)))).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal((0L, 2 * s_setBytes, 0), engine.ScanMemoryUse);
        Assert.Equal(0, engine.QueryCache.Bytes);
    }

    /// <summary>
    /// A scan that finds no room waits in line, outside any read scope (a waiting scan that held its
    /// snapshot kept every seal's head chunks from reuse under sixteen dashboards), and leaves the line
    /// when its read is cancelled. The scan with the only set reads on with one set, each row group
    /// decoded when it is asked for, every point exact; when it ends, the next in line reads.
    /// </summary>
    [Fact]
    public async Task A_scan_without_room_waits_its_turn_outside_any_read_scope()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        await using var engine = await SealedSeriesAsync(h, h.Options() with { CompactAtSegments = 1000, ScanMemoryBytes = s_setBytes });

        var first = engine.ReadPointsAsync(Key(), long.MinValue, long.MaxValue, PerSeal / 4).GetAsyncEnumerator();
        Assert.True(await first.MoveNextAsync());
        Assert.Equal((s_setBytes, 0), (engine.ScanMemoryUse.Used, engine.ScanMemoryUse.Waiting));
        Assert.Equal(1, engine.ActiveReads);

        var second = Task.Run(() => AssertScanAsync(engine));
        await Eventually.Until(() => engine.ScanMemoryUse.Waiting == 1, "1 scan waiting for scan memory", TimeSpan.FromSeconds(20));
        using var cancel = new CancellationTokenSource();
        var third = Task.Run(async () =>
        {
            await foreach (var _ in engine.ReadPointsAsync(Key(), long.MinValue, long.MaxValue, PerSeal, cancel.Token))
            {
            }
        });
        await Eventually.Until(() => engine.ScanMemoryUse.Waiting == 2, "2 scans waiting for scan memory", TimeSpan.FromSeconds(20));
        Assert.Equal(1, engine.ActiveReads); // the first's; the waiting scans hold none
        Assert.Equal(s_setBytes, engine.ScanMemoryUse.Used);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => third);
        Assert.Equal(1, engine.ScanMemoryUse.Waiting);
        Assert.False(second.IsCompleted);

        long expected = 0;
        do
        {
            await Task.Delay(1);
            for (var i = 0; i < first.Current.Count; i++, expected++)
            {
                Assert.Equal(expected, first.Current.Steps[i]);
                Assert.Equal(Value(expected), first.Current.Values[i]);
            }
        }
        while (await first.MoveNextAsync());
        Assert.Equal(Seals * PerSeal, expected);
        await first.DisposeAsync();

        await second.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal((0L, s_setBytes, 0), engine.ScanMemoryUse);
    }

    /// <summary>
    /// A scan that decodes ahead into a second set of columns gives that set back as soon as another
    /// scan waits, at its next row group, and reads on with one set, every point exact, without
    /// asking for more: the waiting scan starts while the first is still open.
    /// </summary>
    [Fact]
    public async Task A_scan_with_two_sets_gives_one_back_when_another_waits()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        await using var engine = await SealedSeriesAsync(h, h.Options() with { CompactAtSegments = 1000, ScanMemoryBytes = 2 * s_setBytes });

        await using var first = engine.ReadPointsAsync(Key(), long.MinValue, long.MaxValue, PerSeal / 4).GetAsyncEnumerator();
        await using var second = engine.ReadPointsAsync(Key(), long.MinValue, long.MaxValue, PerSeal / 4).GetAsyncEnumerator();
        long firstAt = 0, secondAt = 0;
        Assert.True(await first.MoveNextAsync());
        Assert.Equal((2 * s_setBytes, 0), (engine.ScanMemoryUse.Used, engine.ScanMemoryUse.Waiting)); // decoding ahead

        var secondStarts = second.MoveNextAsync().AsTask();
        await Eventually.Until(() => engine.ScanMemoryUse.Waiting == 1, "1 scan waiting for scan memory", TimeSpan.FromSeconds(20));
        var firstOpen = true;
        while (!secondStarts.IsCompleted && firstOpen)
        {
            CheckSlice(first.Current, ref firstAt);
            firstOpen = await first.MoveNextAsync();
            await Task.Delay(1);
        }

        Assert.True(firstOpen, "the second scan started only when the first ended");
        Assert.True(await secondStarts.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal((2 * s_setBytes, 0), (engine.ScanMemoryUse.Used, engine.ScanMemoryUse.Waiting)); // one set each

        // The first reads to its end with its one set while the second holds the other.
        await Task.Run(async () =>
        {
            do
            {
                CheckSlice(first.Current, ref firstAt);
            }
            while (await first.MoveNextAsync());
        }).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(Seals * PerSeal, firstAt);

        do
        {
            CheckSlice(second.Current, ref secondAt);
        }
        while (await second.MoveNextAsync());
        Assert.Equal(Seals * PerSeal, secondAt);
    }

    private static void CheckSlice(PointSlice slice, ref long expected)
    {
        for (var i = 0; i < slice.Count; i++, expected++)
        {
            Assert.Equal(expected, slice.Steps[i]);
            Assert.Equal(Value(expected), slice.Values[i]);
        }
    }

    /// <summary>One set of columns for a row group of this test's series, as a scan takes it from the scan memory.</summary>
    private static readonly long s_setBytes = (long)ChunkRecycler.ColumnCapacity(PerSeal) * HeadChunk.ColumnBytesPerPoint;

    /// <summary>The point files (float and double; a seal also writes other files).</summary>
    private static string[] PointFiles(EngineHarness h) =>
        [.. Directory.GetFiles(Path.Combine(h.DataDirectory, "segments"), "*.parquet").Where(p => p.EndsWith("-f.parquet", StringComparison.Ordinal) || p.EndsWith("-d.parquet", StringComparison.Ordinal))];

    /// <summary>One series sealed as <see cref="Seals"/> row groups in as many files (no compaction unless the options ask).</summary>
    private static async Task<StorageEngine> SealedSeriesAsync(EngineHarness h, StorageOptions? options = null)
    {
        var engine = StorageEngine.Open(options ?? h.Options() with { CompactAtSegments = 1000 });
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
