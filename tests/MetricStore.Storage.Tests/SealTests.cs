using CsCheck;
using MetricStore.Core;
using MetricStore.Storage.Wal;
using Parquet;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

public sealed class SealTests
{
    [Fact]
    public async Task Sealing_moves_points_into_parquet_and_reads_stay_exact_across_reopen()
    {
        await using var h = EngineHarness.Open();
        var (steps, _) = Range(0, 10_000, s => s);
        var floats = steps.Select(s => (double)(float)(1.0 / (s + 1))).ToArray();
        var doubles = steps.Select(s => Math.PI * s).ToArray();
        await h.Engine.WriteAsync(Batch("w", 1, (Key("f32"), steps, floats), (Key("f64"), steps, doubles), (Key("f32", rank: "1"), steps[..10], floats[..10])));
        await h.Engine.SealNowAsync();

        Assert.Equal(1, h.Engine.Seals);
        Assert.Equal(20_010, h.Engine.SegmentRows);
        var files = Directory.GetFiles(Path.Combine(h.DataDirectory, "segments")).Select(p => Path.GetFileName(p)).Order().ToArray();
        Assert.Equal(new[] { "00000000000000000001-d.parquet", "00000000000000000001-f.parquet", "00000000000000000001-s.parquet" }, files);
        Assert.Single(Directory.GetFiles(Path.Combine(h.DataDirectory, "manifest")));
        Assert.Equal(floats, h.Read(Key("f32"))!.Values.AsSpan(0, 10_000).ToArray());
        Assert.Equal(doubles, h.Read(Key("f64"))!.Values.AsSpan(0, 10_000).ToArray());

        await h.ReopenAsync();
        Assert.Equal(0, h.Engine.Recovery.Points);
        Assert.Equal(floats, h.Read(Key("f32"))!.Values.AsSpan(0, 10_000).ToArray());
        Assert.Equal(doubles, h.Read(Key("f64"))!.Values.AsSpan(0, 10_000).ToArray());
        Assert.Equal(10, h.Read(Key("f32", rank: "1"))!.Count);
        Assert.Equal(500, h.Read(Key("f64"), 100, 599)!.Count);
    }

    /// <summary>What the byte threshold counts: every array of a chunk, at any size and after it grows.</summary>
    [Fact]
    public void A_chunk_counts_the_memory_of_its_columns_and_rollup()
    {
        Assert.Equal(Query.Aggregate.Bytes, System.Runtime.CompilerServices.Unsafe.SizeOf<Query.Aggregate>());
        static long Arrays(Head.HeadChunk chunk) =>
            ((chunk.Columns.Steps.Length + chunk.Columns.Values.Length + chunk.Columns.Timestamps.Length) * 8L)
            + chunk.Levels.Sum(l => (long)l.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<Query.Aggregate>());
        foreach (var capacity in new[] { Head.SeriesHead.FirstChunkSize, 4096, Head.SeriesHead.ChunkSize })
        {
            var chunk = new Head.HeadChunk(capacity);
            Assert.Equal(Arrays(chunk) + Head.HeadChunk.ObjectBytes, chunk.MemoryBytes);
            if (capacity < Head.SeriesHead.ChunkSize)
            {
                chunk.Grow(capacity * 4);
                Assert.Equal(Arrays(chunk) + Head.HeadChunk.ObjectBytes, chunk.MemoryBytes);
            }
        }
    }

    /// <summary>
    /// Many short series fill the head's memory long before its point threshold: each series'
    /// chunk has room and objects beyond its points. The byte threshold seals them, and writes wait
    /// for a running seal at twice it, so the head's memory is bounded whatever the number of series.
    /// </summary>
    [Fact]
    public async Task Many_short_series_are_sealed_by_the_memory_their_chunks_hold()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        const long threshold = 1L << 20;
        const int series = 3000;
        const int rounds = 8;
        const int perRound = 5;
        var waits = 0;
        await using var engine = StorageEngine.Open(h.Options() with
        {
            SealThresholdPoints = 100_000_000, // never reached: 120k points in all
            SealThresholdBytes = threshold,
            Log = (_, message) =>
            {
                if (message.StartsWith("writes waited", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref waits);
                }
            },
        });

        // Each round adds 5 points to every series: 15k points, but 3.6 MB of first chunks after a seal.
        var firstChunks = series * new Head.HeadChunk(Head.SeriesHead.FirstChunkSize).MemoryBytes;
        Assert.True(firstChunks > 2 * threshold, $"{firstChunks} bytes of first chunks");
        ulong seq = 0;
        for (var round = 0; round < rounds; round++)
        {
            var batch = Enumerable.Range(0, series).Select(i =>
            {
                var (steps, values) = Range(round * perRound, perRound, s => (s * 10) + i);
                return (Key($"m{i}"), steps, values);
            }).ToArray();
            Assert.Equal(WriteOutcome.Durable, (await engine.WriteAsync(Batch("w", ++seq, batch))).Outcome);
        }

        // A seal after every round, each started while the one before ran: a round is over twice the
        // threshold, and the next arrives while its seal of 3000 series is still writing.
        Assert.True(engine.Seals >= rounds / 2, $"{engine.Seals} seals of {rounds} rounds of {firstChunks} bytes against a threshold of {threshold}");
        Assert.True(waits > 0, "no write waited for a running seal with twice the byte threshold unsealed");
        await engine.SealNowAsync();
        foreach (var i in new[] { 0, 1234, series - 1 })
        {
            var points = Read(engine, Key($"m{i}"))!;
            Assert.Equal(rounds * perRound, points.Count);
            Assert.Equal(Enumerable.Range(0, rounds * perRound).Select(s => (s * 10.0) + i), points.Values.AsSpan(0, points.Count).ToArray());
        }
    }

    /// <summary>
    /// A chunk knows whether its values are all float32 (from the batch's float32 origin, or a check
    /// at append), and a seal picks the file type from that. A double among the first points must
    /// survive the chunk's growth into a pooled larger one, and a chunk reused after a seal must
    /// start exact again.
    /// </summary>
    [Fact]
    public async Task A_double_in_a_chunk_makes_its_series_double_through_growth_and_a_reused_chunk_starts_exact()
    {
        await using var h = EngineHarness.Open();
        var key = Key("mixed");
        static WriteBatch Floats(SeriesKey key, ulong seq, long from, int count)
        {
            var (steps, values) = Range(from, count, s => (float)(1.0 / (s + 1)));
            return new WriteBatch { WriterId = "w", Seq = seq, Series = [new SeriesPoints { Key = key, Count = count, Steps = steps, Values = values, Timestamps = [1_700_000_000_000], SharedTimestamp = true, Float32Origin = true }] };
        }

        var (firstSteps, doubles) = Range(0, 100, s => Math.PI * (s + 1)); // not float32, and not sent as float32
        await h.Engine.WriteAsync(Batch("w", 1, (key, firstSteps, doubles)));
        ulong seq = 2;
        for (long from = 100; from < 70_100; from += 1000)
        {
            await h.Engine.WriteAsync(Floats(key, seq++, from, 1000)); // the first chunk grows, moves into pooled 16k, 32k and 64k chunks, then a second chunk starts
        }

        await h.Engine.SealNowAsync();
        string[] PointFiles() => Directory.GetFiles(Path.Combine(h.DataDirectory, "segments")).Select(Path.GetFileName).Where(n => !n!.EndsWith("-s.parquet", StringComparison.Ordinal)).Order().ToArray()!;
        Assert.Equal(["00000000000000000001-d.parquet"], PointFiles());
        var read = h.Read(key)!;
        Assert.Equal(70_100, read.Count);
        Assert.Equal(doubles, read.Values.AsSpan(0, 100).ToArray());

        for (long from = 70_100; from < 110_100; from += 1000)
        {
            await h.Engine.WriteAsync(Floats(key, seq++, from, 1000)); // into chunks the seal left for reuse
        }

        await h.Engine.SealNowAsync();
        Assert.Equal(["00000000000000000001-d.parquet", "00000000000000000002-f.parquet"], PointFiles());
        read = h.Read(key)!;
        Assert.Equal(110_100, read.Count);
        Assert.Equal(doubles, read.Values.AsSpan(0, 100).ToArray());
        Assert.Equal((double)(float)(1.0 / 100_001), read.Values[100_000]);
    }

    [Fact]
    public async Task Whether_values_fit_float32_comes_from_the_file_type_when_sealed_and_from_the_range_in_the_head()
    {
        await using var h = EngineHarness.Open();
        var (steps, _) = Range(0, 1_000, s => s);
        var floats = steps.Select(s => (double)(float)(1.0 / (s + 1))).ToArray();
        floats[3] = double.NaN; // counts as exact
        var doubles = steps.Select(s => Math.PI * s).ToArray();
        await h.Engine.WriteAsync(Batch("w", 1, (Key("f32"), steps, floats), (Key("f64"), steps, doubles)));
        await h.Engine.SealNowAsync();
        Assert.True(await h.Engine.ValuesFitFloat32Async(Key("f32")));
        Assert.False(await h.Engine.ValuesFitFloat32Async(Key("f64")));
        Assert.False(await h.Engine.ValuesFitFloat32Async(Key("f64"), 0, 0)); // a double row group says no without being read (pi * 0 would fit)
        Assert.True(await h.Engine.ValuesFitFloat32Async(Key("never written")));

        // In the head: 0.1 at step 1500 does not fit; ranges that leave it out do.
        var (more, moreValues) = Range(1_000, 1_000, s => (float)s);
        moreValues[500] = 0.1;
        await h.Engine.WriteAsync(Batch("w", 2, (Key("f32"), more, moreValues)));
        Assert.False(await h.Engine.ValuesFitFloat32Async(Key("f32")));
        Assert.False(await h.Engine.ValuesFitFloat32Async(Key("f32"), 1_500, 1_500));
        Assert.True(await h.Engine.ValuesFitFloat32Async(Key("f32"), 0, 1_499));
        Assert.True(await h.Engine.ValuesFitFloat32Async(Key("f32"), 1_501, long.MaxValue));

        // Re-logging step 1500 with a float32 value makes the whole series fit again (last write wins).
        await h.Engine.WriteAsync(Batch("w", 3, (Key("f32"), [1_500], [0.25])));
        Assert.True(await h.Engine.ValuesFitFloat32Async(Key("f32")));
    }

    [Fact]
    public async Task A_seal_writes_in_order_chunks_as_they_are_and_merges_out_of_order_ones_across_row_groups()
    {
        // 2.5M in-order points span 39 head chunks and three 1M-row row groups (written through the
        // reused staging buffer); the second series comes in backwards with a re-logged step, so
        // its chunks are merged first. Both must read back exactly, before and after a reopen.
        await using var h = EngineHarness.Open();
        const int N = 2_500_000;
        var seq = 0ul;
        for (var from = 0; from < N; from += 100_000)
        {
            var (steps, values) = Range(from, 100_000, s => (float)(1.0 / (s + 1)));
            var (back, backValues) = Range(N - from - 100_000, 100_000, s => -s);
            Array.Reverse(back);
            Array.Reverse(backValues);
            await h.Engine.WriteAsync(Batch("w", ++seq, (Key("forward"), steps, values), (Key("backward"), back, backValues)));
        }

        await h.Engine.WriteAsync(Batch("w", ++seq, (Key("backward"), [7], [0.5])));
        await h.Engine.SealNowAsync();
        Assert.Equal(2L * N, h.Engine.SegmentRows);

        for (var round = 0; round < 2; round++)
        {
            var forward = h.Read(Key("forward"))!;
            Assert.Equal(N, forward.Count);
            var backward = h.Read(Key("backward"))!;
            Assert.Equal(N, backward.Count);
            for (var i = 0; i < N; i++)
            {
                Assert.True(forward.Steps[i] == i && forward.Values[i] == (float)(1.0 / (i + 1)), $"forward point {i}: ({forward.Steps[i]}, {forward.Values[i]})");
                Assert.True(backward.Steps[i] == i && backward.Values[i] == (i == 7 ? 0.5 : -i), $"backward point {i}: ({backward.Steps[i]}, {backward.Values[i]})");
            }

            await h.ReopenAsync();
            Assert.Equal(0, h.Engine.Recovery.Points);
        }
    }

    [Fact]
    public async Task The_wal_behind_a_seal_is_deleted_and_writer_seqs_survive_it()
    {
        await using var h = EngineHarness.Open();
        for (ulong seq = 1; seq <= 3; seq++)
        {
            await h.Engine.WriteAsync(Batch("w", seq, (Key(), [(long)seq], [seq])));
        }

        await h.Engine.SealNowAsync();
        var segments = WalRecovery.ListSegments(h.WalDirectory);
        Assert.Equal([2L], segments);
        await h.ReopenAsync();
        Assert.Equal(3ul, h.Engine.DurableSeq("w"));
        var retry = await h.Engine.WriteAsync(Batch("w", 2, (Key(), [2], [-1.0])));
        Assert.Equal(WriteOutcome.Duplicate, retry.Outcome);
        Assert.Equal([1.0, 2.0, 3.0], h.Read(Key())!.Values.AsSpan(0, 3).ToArray());
    }

    [Fact]
    public async Task A_step_relogged_after_it_was_sealed_replaces_the_sealed_value()
    {
        await using var h = EngineHarness.Open();
        var (steps, values) = Range(0, 100, s => s);
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        await h.Engine.SealNowAsync();
        await h.Engine.WriteAsync(Batch("w", 2, (Key(), [50], [-50.0])));
        Assert.Equal(-50.0, h.Read(Key())!.Values[50]);
        await h.Engine.SealNowAsync();
        Assert.Equal(-50.0, h.Read(Key())!.Values[50]);
        await h.ReopenAsync();
        var read = h.Read(Key())!;
        Assert.Equal(100, read.Count);
        Assert.Equal(-50.0, read.Values[50]);
        Assert.Equal(51.0, read.Values[51]);
    }

    [Fact]
    public async Task Sealed_segments_use_delta_steps_byte_stream_split_values_zstd_and_float_when_exact()
    {
        await using var h = EngineHarness.Open();
        var (steps, values) = Range(0, 5000, s => (float)Math.Exp(-s / 1000.0));
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        await h.Engine.SealNowAsync();

        var path = Directory.GetFiles(Path.Combine(h.DataDirectory, "segments"), "*-f.parquet").Single();
        await using var reader = await ParquetReader.CreateAsync(path);
        Assert.Equal(["series_id", "step", "value", "timestamp_ms"], reader.Schema.DataFields.Select(f => f.Name));
        Assert.Equal(typeof(float), reader.Schema.DataFields.Single(f => f.Name == "value").ClrType);
        var columns = reader.Metadata!.RowGroups[0].Columns!;
        string Encodings(string name) => string.Join(",", columns.Single(c => c.MetaData!.PathInSchema[^1] == name).MetaData!.Encodings);
        Assert.Contains("DELTA_BINARY_PACKED", Encodings("step"), StringComparison.Ordinal);
        Assert.Contains("DELTA_BINARY_PACKED", Encodings("timestamp_ms"), StringComparison.Ordinal);
        Assert.Contains("BYTE_STREAM_SPLIT", Encodings("value"), StringComparison.Ordinal);
        Assert.All(columns, c => Assert.Equal("ZSTD", c.MetaData!.Codec.ToString()));
        Assert.True(new FileInfo(path).Length < 5000 * 6, $"{new FileInfo(path).Length} bytes for 5000 points");

        // The series table names what series_id 0 is, for readers without MetricStore.
        var table = Directory.GetFiles(Path.Combine(h.DataDirectory, "segments"), "*-s.parquet").Single();
        await using var seriesReader = await ParquetReader.CreateAsync(table);
        Assert.Equal(["series_id", "run_id", "metric", "labels"], seriesReader.Schema.DataFields.Select(f => f.Name));
        using var rows = seriesReader.OpenRowGroupReader(0);
        var runIds = new string?[1];
        await rows.ReadAsync(seriesReader.Schema.DataFields[1], new Memory<string?>(runIds));
        Assert.Equal(RunA, runIds[0]);
    }

    [Fact]
    public async Task The_head_seals_itself_past_the_threshold()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        var options = h.Options() with { SealThresholdPoints = 1000 };
        await using (var engine = StorageEngine.Open(options))
        {
            for (ulong seq = 1; seq <= 20; seq++)
            {
                var (steps, values) = Range((long)(seq - 1) * 500, 500, s => s);
                await engine.WriteAsync(Batch("w", seq, (Key(), steps, values)));
            }

            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (engine.Seals < 4 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            Assert.True(engine.Seals >= 4, $"{engine.Seals} seals for 10 000 points at a threshold of 1000");
            Assert.Equal(10_000, Read(engine, Key())!.Count);
        }

        await h.ReopenAsyncAfterClose();
        Assert.Equal(Enumerable.Range(0, 10_000).Select(i => (double)i), h.Read(Key())!.Values.AsSpan(0, 10_000).ToArray());
    }

    [Fact]
    public async Task Files_left_by_an_interrupted_seal_are_removed_and_nothing_is_lost()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), [1, 2, 3], [1.0, 2.0, 3.0])));
        await h.CloseAsync();
        // A seal that died before its manifest: a finished file and a half-written one, neither listed.
        var segments = Path.Combine(h.DataDirectory, "segments");
        File.WriteAllText(Path.Combine(segments, "00000000000000000001-f.parquet"), "PAR1 not really");
        File.WriteAllText(Path.Combine(segments, "00000000000000000001-d.parquet.tmp"), "half");

        await h.ReopenAsyncAfterClose();
        Assert.Empty(Directory.GetFiles(segments));
        Assert.Equal([1.0, 2.0, 3.0], h.Read(Key())!.Values.AsSpan(0, 3).ToArray());
        Assert.Contains(h.Log, l => l.Contains("interrupted seal", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_crash_after_the_manifest_but_before_the_wal_was_deleted_applies_nothing_twice()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), [5], [1.0])));
        await h.Engine.WriteAsync(Batch("w", 2, (Key(), [5], [2.0])));
        var keep = Directory.GetFiles(h.WalDirectory).ToDictionary(p => p, File.ReadAllBytes);
        await h.Engine.SealNowAsync();
        await h.CloseAsync();
        foreach (var (path, bytes) in keep)
        {
            File.WriteAllBytes(path, bytes); // as if the crash came before the WAL deletion
        }

        await h.ReopenAsyncAfterClose();
        Assert.Equal(0, h.Engine.Recovery.Points);
        Assert.Equal([2.0], h.Read(Key())!.Values.AsSpan(0, 1).ToArray());
        Assert.Equal(1, h.Read(Key())!.Count);
    }

    [Fact]
    public void Random_writes_seals_and_reopens_read_like_a_last_write_wins_map()
    {
        // Each request: points (step, value) and an action after it: 0 nothing, 1 seal, 2 reopen.
        var gen = Gen.Select(Gen.Int[0, 60].Select(Gen.Double[-1e3, 1e3]).Array[1, 20], Gen.Int[0, 2]).Array[1, 10];
        gen.Sample(requests => ModelCheck.Run(dir => new StorageOptions { DataDirectory = dir }, requests), iter: 30);
    }
}
