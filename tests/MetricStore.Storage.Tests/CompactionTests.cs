using CsCheck;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

public sealed class CompactionTests
{
    private static async Task<StorageEngine> OpenAsync(EngineHarness h, int compactAt)
    {
        await h.CloseAsync();
        return StorageEngine.Open(h.Options() with { CompactAtSegments = compactAt });
    }

    private static string[] PointFiles(EngineHarness h) =>
        Directory.GetFiles(Path.Combine(h.DataDirectory, "segments"), "*.parquet")
            .Select(p => Path.GetFileName(p))
            .Where(n => n.EndsWith("-f.parquet", StringComparison.Ordinal) || n.EndsWith("-d.parquet", StringComparison.Ordinal))
            .Order()
            .ToArray();

    [Fact]
    public async Task Many_small_segments_are_merged_and_relogged_steps_are_stored_once()
    {
        await using var h = EngineHarness.Open();
        await using (var engine = await OpenAsync(h, compactAt: 4))
        {
            for (ulong seq = 1; seq <= 4; seq++)
            {
                // Each seal re-logs steps 0..99 with new values, plus 100 new steps.
                var (steps, values) = Range(0, 100 + (100 * (int)seq), s => s * (double)seq);
                await engine.WriteAsync(Batch("w", seq, (Key(), steps, values), (Key("other"), [(long)seq], [seq])));
                await engine.SealNowAsync();
            }

            await engine.CompactionIdleAsync();
            Assert.Equal(1, engine.Compactions);
            Assert.Single(PointFiles(h));
            var read = Read(engine, Key())!;
            Assert.Equal(500, read.Count);
            Assert.Equal(Enumerable.Range(0, 500).Select(s => s * 4.0), read.Values.AsSpan(0, 500).ToArray());
            Assert.Equal(500 + 4, engine.SegmentRows); // each step of each series once, not once per seal

            // Compacted files are zstd-compressed Parquet too.
            await using var reader = await Parquet.ParquetReader.CreateAsync(Path.Combine(h.DataDirectory, "segments", PointFiles(h).Single()));
            Assert.All(reader.Metadata!.RowGroups[0].Columns!, c => Assert.Equal("ZSTD", c.MetaData!.Codec.ToString()));
        }

        await h.ReopenAsyncAfterClose();
        Assert.Equal(Enumerable.Range(0, 500).Select(s => s * 4.0), h.Read(Key())!.Values.AsSpan(0, 500).ToArray());
        Assert.Equal([1.0, 2.0, 3.0, 4.0], h.Read(Key("other"))!.Values.AsSpan(0, 4).ToArray());
    }

    [Fact]
    public async Task Reads_during_compaction_see_every_point()
    {
        await using var h = EngineHarness.Open();
        await using var engine = await OpenAsync(h, compactAt: 3);
        var expected = 0;
        for (ulong seq = 1; seq <= 12; seq++)
        {
            var (steps, values) = Range(expected, 5_000, s => s);
            expected += 5_000;
            await engine.WriteAsync(Batch("w", seq, (Key(), steps, values)));
            await engine.SealNowAsync();
            Assert.Equal(expected, Read(engine, Key())!.Count);
        }

        await engine.CompactionIdleAsync();
        Assert.True(engine.Compactions >= 2, $"{engine.Compactions} compactions");
        Assert.Equal(expected, Read(engine, Key())!.Count);
    }

    [Theory]
    [InlineData(new long[] { 10, 10, 10 }, 4, -1, 0)] // too few files
    [InlineData(new long[] { 40, 10, 10, 10, 10 }, 4, 1, 4)] // the cheapest run of four: the small ones
    [InlineData(new long[] { 1000, 10, 12, 9, 11, 10 }, 4, 1, 4)] // the big file is left alone
    [InlineData(new long[] { 10, 10, 10, 10 }, 4, 0, 4)]
    [InlineData(new long[] { 100, 1, 100, 1, 100, 1, 100, 1, 100, 1, 100, 1, 100, 1, 100, 1 }, 4, 12, 4)] // no tier: the safety valve
    public void Compaction_picks_adjacent_files_of_similar_size(long[] rows, int fanout, int start, int count)
    {
        var pick = StorageEngine.PickCompaction(rows, fanout);
        Assert.Equal(start < 0 ? null : (start, count), pick);
    }

    [Fact]
    public async Task A_compacted_file_is_not_rewritten_by_the_next_tier_of_small_seals()
    {
        await using var h = EngineHarness.Open();
        await using var engine = await OpenAsync(h, compactAt: 4);
        ulong seq = 0;
        var next = 0L;
        async Task SealAsync(int points)
        {
            var (steps, values) = Range(next, points, s => s);
            next += points;
            await engine.WriteAsync(Batch("w", ++seq, (Key(), steps, values)));
            await engine.SealNowAsync();
            await engine.CompactionIdleAsync();
        }

        for (var i = 0; i < 4; i++)
        {
            await SealAsync(5_000);
        }

        Assert.Equal(1, engine.Compactions);
        var big = Assert.Single(PointFiles(h));
        for (var i = 0; i < 4; i++)
        {
            await SealAsync(1_000);
        }

        Assert.Equal(2, engine.Compactions);
        var files = PointFiles(h);
        Assert.Equal(2, files.Length);
        Assert.Equal(big, files[0]); // still there, not rewritten
        Assert.Equal(Enumerable.Range(0, 24_000).Select(i => (double)i), Read(engine, Key())!.Values.AsSpan(0, 24_000).ToArray());
    }

    [Fact]
    public void Random_writes_seals_compactions_and_reopens_read_like_a_last_write_wins_map()
    {
        // Each request: points and an action after it: 0 nothing, 1 seal, 2 reopen.
        var gen = Gen.Select(Gen.Int[0, 50].Select(Gen.Double[-1e3, 1e3]).Array[1, 15], Gen.Int[0, 2]).Array[1, 14];
        gen.Sample(requests => ModelCheck.Run(dir => new StorageOptions { DataDirectory = dir, CompactAtSegments = 2 }, requests), iter: 30);
    }
}
