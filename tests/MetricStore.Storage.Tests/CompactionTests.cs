using System.Globalization;
using CsCheck;
using DuckDB.NET.Data;
using MetricStore.Core;
using MetricStore.Storage.Query;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

public sealed class CompactionTests
{
    private static async Task<StorageEngine> OpenAsync(EngineHarness h, int compactAt, int copyRows = int.MaxValue)
    {
        await h.CloseAsync();
        return StorageEngine.Open(h.Options() with { CompactAtSegments = compactAt, CompactionCopyRows = copyRows });
    }

    /// <summary>Per series_id, what DuckDB reads in the point files: count, sum, step range, timestamp range, and the count it finds at steps of at least <paramref name="fromStep"/> (pruned by row-group statistics).</summary>
    private static Dictionary<int, (long Count, double Sum, long MinStep, long MaxStep, long MinTimestamp, long MaxTimestamp, long FromStep)> DuckDbPoints(EngineHarness h, long fromStep)
    {
        var segments = Path.Combine(h.DataDirectory, "segments").Replace("'", "''", StringComparison.Ordinal);
        using var connection = new DuckDBConnection("Data Source=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT series_id, count(*), sum(value::DOUBLE), min(step), max(step), min(timestamp_ms), max(timestamp_ms), count(*) FILTER (WHERE step >= {fromStep})
            FROM read_parquet('{segments}/*-[fd].parquet', union_by_name = true) GROUP BY series_id
            """;
        using var reader = command.ExecuteReader();
        var result = new Dictionary<int, (long, double, long, long, long, long, long)>();
        long Long(int i) => Convert.ToInt64(reader.GetValue(i), CultureInfo.InvariantCulture);
        while (reader.Read())
        {
            result[reader.GetInt32(0)] = (Long(1), reader.GetDouble(2), Long(3), Long(4), Long(5), Long(6), Long(7));
        }

        return result;
    }

    /// <summary>Every bucket of a 13-bucket downsample and the summary equal a scan of the expected points.</summary>
    private static async Task AssertAggregatesAsync(StorageEngine engine, SeriesKey key, long[] steps, double[] values)
    {
        var grid = BucketGrid.Create(steps[0], steps[^1], 13);
        using var result = (await engine.DownsampleAsync(key, grid))!;
        for (var b = 0; b < grid.Count; b++)
        {
            var lo = Array.BinarySearch(steps, grid.BucketStart(b));
            var hi = Array.BinarySearch(steps, grid.BucketEnd(b));
            var expected = Aggregate.Scan(steps, values, steps, lo, hi + 1);
            var actual = result.Buckets[b];
            Assert.Equal((expected.Count, expected.Min, expected.MinStep, expected.Max, expected.MaxStep, expected.First, expected.Last), (actual.Count, actual.Min, actual.MinStep, actual.Max, actual.MaxStep, actual.First, actual.Last));
            Assert.Equal(expected.Sum, actual.Sum, 1e-6);
        }

        var summary = (await engine.GetSummaryAsync(key))!.Aggregate;
        Assert.Equal((steps.LongLength, steps[0], steps[^1], values[^1]), (summary.Count, summary.FirstStep, summary.LastStep, summary.Last));
        Assert.Equal(values.Sum(), summary.Sum, 1e-6);
    }

    private static string[] PointFiles(EngineHarness h) =>
        Directory.GetFiles(Path.Combine(h.DataDirectory, "segments"), "*.parquet")
            .Select(p => Path.GetFileName(p))
            .Where(n => n.EndsWith("-f.parquet", StringComparison.Ordinal) || n.EndsWith("-d.parquet", StringComparison.Ordinal))
            .Order()
            .ToArray();

    /// <summary>
    /// Seals 1000 points, starts a streamed read of them (a read scope that stays open until the
    /// enumerator ends or is disposed), then seals 1000 more, which a compaction at two files merges.
    /// Returns the first seal's files, still on disk, and the open read.
    /// </summary>
    private static async Task<(string[] Replaced, IAsyncEnumerator<PointSlice> Read)> CompactUnderAnOpenReadAsync(EngineHarness h, StorageEngine engine)
    {
        var (steps, values) = Range(0, 1000, s => s * 0.5);
        await engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        await engine.SealNowAsync();
        var first = PointFiles(h);

        var read = engine.ReadPointsAsync(Key(), 0, long.MaxValue, 100).GetAsyncEnumerator();
        Assert.True(await read.MoveNextAsync());

        (steps, values) = Range(1000, 1000, s => s * 0.5);
        await engine.WriteAsync(Batch("w", 2, (Key(), steps, values)));
        await engine.SealNowAsync();
        await engine.CompactionIdleAsync();
        Assert.Equal(1, engine.Compactions);
        Assert.All(first, f => Assert.Contains(f, PointFiles(h))); // replaced, but the read may still open it
        return (first, read);
    }

    /// <summary>
    /// A read that took its snapshot before a compaction may still open the files the compaction
    /// replaced: they must stay until that read ends, then go (and no reader is left open on them).
    /// </summary>
    [Fact]
    public async Task Replaced_files_stay_until_the_reads_that_may_list_them_end()
    {
        await using var h = EngineHarness.Open();
        await using var engine = await OpenAsync(h, compactAt: 2);
        var (first, read) = await CompactUnderAnOpenReadAsync(h, engine);

        // A read that enters after the compaction lists only its output: it does not hold the
        // replaced files, which go when the first read ends although this one is still active.
        var later = engine.ReadPointsAsync(Key(), 0, long.MaxValue, 100).GetAsyncEnumerator();
        Assert.True(await later.MoveNextAsync());

        var points = 100L;
        while (await read.MoveNextAsync())
        {
            points += read.Current.Count;
        }

        Assert.Equal(1000, points); // its snapshot: the first seal's points
        await read.DisposeAsync();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (PointFiles(h).Intersect(first).Any() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Empty(PointFiles(h).Intersect(first));
        points = 100;
        while (await later.MoveNextAsync())
        {
            points += later.Current.Count;
        }

        await later.DisposeAsync();
        Assert.Equal(2000, points);
        Assert.Equal(2000, (await engine.ReadSeriesAsync(Key()))!.Count);
    }

    /// <summary>
    /// The query cache lets go of the row groups of replaced files with the files, instead of keeping
    /// them in its budget until they age out.
    /// </summary>
    [Fact]
    public async Task Cached_row_groups_of_replaced_files_leave_the_cache_with_the_files()
    {
        await using var h = EngineHarness.Open();
        await using var engine = await OpenAsync(h, compactAt: 3);
        for (ulong seq = 1; seq <= 2; seq++)
        {
            var (steps, values) = Range(((int)seq - 1) * 1000, 1000, s => s * 0.5);
            await engine.WriteAsync(Batch("w", seq, (Key(), steps, values)));
            await engine.SealNowAsync();
        }

        Assert.Equal(2000, (await engine.ReadSeriesAsync(Key()))!.Count);
        var cached = engine.QueryCache.Bytes;
        Assert.True(cached > 0, "the read cached nothing");

        var (more, moreValues) = Range(2000, 1000, s => s * 0.5);
        await engine.WriteAsync(Batch("w", 3, (Key(), more, moreValues)));
        await engine.SealNowAsync();
        await engine.CompactionIdleAsync();
        Assert.Equal(1, engine.Compactions);
        Assert.Equal(0, engine.QueryCache.Bytes);

        Assert.Equal(3000, (await engine.ReadSeriesAsync(Key()))!.Count);
        Assert.True(engine.QueryCache.Bytes > 0, "the output was not cached");
    }

    /// <summary>
    /// At shutdown the engine deletes the replaced files a read still holds (a read of a closed
    /// engine has nothing left to read), so no deletion runs later, when another engine may own the
    /// directory and have reused the file numbers.
    /// </summary>
    [Fact]
    public async Task Replaced_files_a_read_still_holds_are_deleted_at_shutdown()
    {
        await using var h = EngineHarness.Open();
        var engine = await OpenAsync(h, compactAt: 2);
        var (first, read) = await CompactUnderAnOpenReadAsync(h, engine);

        await engine.DisposeAsync();
        Assert.Empty(PointFiles(h).Intersect(first));
        await read.DisposeAsync(); // after the engine: nothing left to run

        await using var reopened = await OpenAsync(h, compactAt: 2);
        Assert.Equal(2000, (await reopened.ReadSeriesAsync(Key()))!.Count);
    }

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
    [InlineData(new long[] { 100, 1, 100, 1, 100, 1, 100 }, 4, -1, 0)] // no tier, fewer than twice the fanout: wait
    [InlineData(new long[] { 100, 1, 100, 1, 100, 1, 100, 1 }, 4, 0, 4)] // no tier, twice the fanout: the cheapest balanced run
    [InlineData(new long[] { 100, 1, 1, 1, 100, 1, 1, 1 }, 4, 0, 5)] // a run where one file holds more than half is not balanced
    [InlineData(new long[] { 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000, 10_000_000_000, 100_000_000_000, 1_000_000_000_000, 10_000_000_000_000, 100_000_000_000_000, 1_000_000_000_000_000 }, 4, 12, 4)] // each file outweighs all before it: the safety valve
    [InlineData(new long[] { 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000, 10_000_000_000, 100_000_000_000, 1_000_000_000_000, 10_000_000_000_000, 100_000_000_000_000 }, 4, -1, 0)] // and not before four times the fanout
    // Seen after the crash test's kills: small files stranded between merged ones (thousands of rows).
    [InlineData(new long[] { 567, 504, 533, 537, 60, 72, 500, 71, 100, 510, 609, 520, 607, 493, 484, 72 }, 8, 1, 8)]
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
    public async Task Row_groups_in_step_order_are_copied_unchanged_and_read_everywhere_as_before()
    {
        await using var h = EngineHarness.Open();
        var floats = Key("loss");
        var doubles = Key("lr");
        var (steps, _) = Range(0, 20_000, s => s);
        double FloatValue(long s) => (float)Math.Sin(s * 0.01);
        double DoubleValue(long s) => 1e-3 / (1 + (s * 1e-4));
        await using (var engine = await OpenAsync(h, compactAt: 8, copyRows: 1_000)) // each seal writes a float and a double file
        {
            for (var seal = 0; seal < 4; seal++)
            {
                var (s, f) = Range(seal * 5_000, 5_000, FloatValue);
                var (_, d) = Range(seal * 5_000, 5_000, DoubleValue);
                var timestamps = s.Select(step => 1_700_000_000_000 + (step * 10)).ToArray(); // one per point
                await engine.WriteAsync(new WriteBatch
                {
                    WriterId = "w",
                    Seq = (ulong)seal + 1,
                    Series = [.. new[] { (floats, f), (doubles, d) }.Select(x => new SeriesPoints { Key = x.Item1, Count = s.Length, Steps = s, Values = x.Item2, Timestamps = timestamps })],
                });
                await engine.SealNowAsync();
            }

            await engine.CompactionIdleAsync();
            Assert.Equal(1, engine.Compactions);
            Assert.Equal(40_000, engine.CompactionCopiedRows); // every row group of both series
            Assert.Equal(2, PointFiles(h).Length); // one float and one double file
            Assert.Equal(steps.Select(FloatValue), Read(engine, floats)!.Values.AsSpan(0, 20_000).ToArray());
            Assert.Equal(steps.Select(DoubleValue), Read(engine, doubles)!.Values.AsSpan(0, 20_000).ToArray());
            Assert.Equal(Enumerable.Range(7_500, 5_000).Select(i => (long)i), Read(engine, doubles, 7_500, 12_499)!.Steps.AsSpan(0, 5_000).ToArray());
            await AssertAggregatesAsync(engine, floats, steps, steps.Select(FloatValue).ToArray());
            await AssertAggregatesAsync(engine, doubles, steps, steps.Select(DoubleValue).ToArray());
        }

        // Plain Parquet still: DuckDB reads the copies with the same counts, sums and statistics.
        var duck = DuckDbPoints(h, fromStep: 12_000);
        Assert.Equal(2, duck.Count);
        var expectedSums = new[] { steps.Sum(FloatValue), steps.Sum(DoubleValue) };
        foreach (var (count, sum, minStep, maxStep, minTimestamp, maxTimestamp, fromStep) in duck.Values)
        {
            Assert.Equal((20_000L, 0L, 19_999L, 1_700_000_000_000L, 1_700_000_199_990L, 8_000L), (count, minStep, maxStep, minTimestamp, maxTimestamp, fromStep));
            Assert.Contains(expectedSums, e => Math.Abs(e - sum) < 1e-6);
        }

        await using (var reader = await Parquet.ParquetReader.CreateAsync(Path.Combine(h.DataDirectory, "segments", PointFiles(h)[0])))
        {
            Assert.Equal(4, reader.RowGroupCount); // the four seals' row groups of one series
            Assert.All(reader.Metadata!.RowGroups.SelectMany(g => g.Columns), c => Assert.Equal("ZSTD", c.MetaData!.Codec.ToString()));

            // The footer's statistics are those of each copied row group.
            var statistics = reader.Metadata.RowGroups.Select(g => (
                BitConverter.ToInt64(g.Columns[1].MetaData!.Statistics!.MinValue), BitConverter.ToInt64(g.Columns[1].MetaData!.Statistics!.MaxValue),
                BitConverter.ToInt64(g.Columns[3].MetaData!.Statistics!.MinValue), BitConverter.ToInt64(g.Columns[3].MetaData!.Statistics!.MaxValue)));
            Assert.Equal(Enumerable.Range(0, 4).Select(i => (i * 5_000L, (i * 5_000L) + 4_999, 1_700_000_000_000L + (i * 50_000L), 1_700_000_000_000L + (i * 50_000L) + 49_990)), statistics);
        }

        await h.ReopenAsyncAfterClose();
        Assert.Equal(steps.Select(FloatValue), h.Read(floats)!.Values.AsSpan(0, 20_000).ToArray());
        Assert.Equal(steps.Select(DoubleValue), h.Read(doubles)!.Values.AsSpan(0, 20_000).ToArray());
        await AssertAggregatesAsync(h.Engine, doubles, steps, steps.Select(DoubleValue).ToArray());
    }

    [Fact]
    public async Task Small_row_groups_between_copied_ones_are_merged_and_relogged_series_are_merged_whole()
    {
        await using var h = EngineHarness.Open();
        var ordered = Key("ordered");
        var relogged = Key("relogged");
        await using var engine = await OpenAsync(h, compactAt: 4, copyRows: 1_000);
        var sizes = new[] { 5_000, 100, 200, 5_000 };
        long next = 0;
        for (var seal = 0; seal < sizes.Length; seal++)
        {
            var (s, v) = Range(next, sizes[seal], x => x);
            next += sizes[seal];
            var (rs, rv) = Range(0, 2_000, x => x + seal); // steps 0..1999 again at every seal
            await engine.WriteAsync(Batch("w", (ulong)seal + 1, (ordered, s, v), (relogged, rs, rv)));
            await engine.SealNowAsync();
        }

        await engine.CompactionIdleAsync();
        Assert.Equal(1, engine.Compactions);
        Assert.Equal(10_000, engine.CompactionCopiedRows); // the two large row groups of the ordered series, nothing of the re-logged one
        var file = Path.Combine(h.DataDirectory, "segments", Assert.Single(PointFiles(h)));
        await using (var reader = await Parquet.ParquetReader.CreateAsync(file))
        {
            // ordered: 5,000 copied, 100 + 200 merged into one, 5,000 copied; relogged: one merged row group.
            Assert.Equal([300L, 2_000L, 5_000L, 5_000L], reader.Metadata!.RowGroups.Select(g => g.NumRows).Order().ToArray());
        }

        Assert.Equal(Enumerable.Range(0, 10_300).Select(i => (double)i), Read(engine, ordered)!.Values.AsSpan(0, 10_300).ToArray());
        Assert.Equal(Enumerable.Range(0, 2_000).Select(i => i + 3.0), Read(engine, relogged)!.Values.AsSpan(0, 2_000).ToArray()); // the last write of each step
        var all = Enumerable.Range(0, 10_300).Select(i => (long)i).ToArray();
        await AssertAggregatesAsync(engine, ordered, all, all.Select(i => (double)i).ToArray());
    }

    [Fact]
    public async Task A_float32_row_group_is_widened_by_a_merge_when_its_series_moves_to_a_double_file()
    {
        await using var h = EngineHarness.Open();
        await using var engine = await OpenAsync(h, compactAt: 4, copyRows: 1);
        var expected = new List<double>();
        for (var seal = 0; seal < 4; seal++)
        {
            // The last seal's values are not float32: the series' compacted file stores doubles.
            var (s, v) = Range(seal * 1_000, 1_000, x => seal == 3 ? x + 0.1 : x);
            expected.AddRange(v);
            await engine.WriteAsync(Batch("w", (ulong)seal + 1, (Key(), s, v)));
            await engine.SealNowAsync();
        }

        await engine.CompactionIdleAsync();
        Assert.Equal(1, engine.Compactions);
        Assert.Equal(1_000, engine.CompactionCopiedRows); // only the double row group
        Assert.EndsWith("-d.parquet", Assert.Single(PointFiles(h)), StringComparison.Ordinal);
        Assert.Equal(expected, Read(engine, Key())!.Values.AsSpan(0, 4_000).ToArray());
        var duck = Assert.Single(DuckDbPoints(h, fromStep: 2_500).Values);
        Assert.Equal((4_000L, 1_500L), (duck.Count, duck.FromStep));
        Assert.Equal(expected.Sum(), duck.Sum, 1e-6);
    }

    [Fact]
    public void Random_writes_mostly_in_step_order_with_copying_compactions_read_like_a_last_write_wins_map()
    {
        // As below, but most requests move on to new steps, so that compactions copy row groups
        // (every row group is large enough), with re-logged steps now and then.
        var gen = Gen.Select(Gen.Int[0, 50].Select(Gen.Double[-1e3, 1e3]).Array[1, 15], Gen.Int[0, 2], Gen.Int[0, 4]).Array[1, 14];
        gen.Sample(
            requests => ModelCheck.Run(
                dir => new StorageOptions { DataDirectory = dir, CompactAtSegments = 2, CompactionCopyRows = 1 },
                requests.Select((r, i) => (r.Item3 == 0 ? r.Item1 : r.Item1.Select(p => (p.Item1 + (100 * i), p.Item2)).ToArray(), r.Item2))),
            iter: 30);
    }

    [Fact]
    public void Random_writes_seals_compactions_and_reopens_read_like_a_last_write_wins_map()
    {
        // Each request: points and an action after it: 0 nothing, 1 seal, 2 reopen.
        var gen = Gen.Select(Gen.Int[0, 50].Select(Gen.Double[-1e3, 1e3]).Array[1, 15], Gen.Int[0, 2]).Array[1, 14];
        gen.Sample(requests => ModelCheck.Run(dir => new StorageOptions { DataDirectory = dir, CompactAtSegments = 2 }, requests), iter: 30);
    }
}
