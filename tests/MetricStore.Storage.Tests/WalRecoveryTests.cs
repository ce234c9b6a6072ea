using CsCheck;
using MetricStore.Core;
using MetricStore.Storage.Wal;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

public sealed class WalRecoveryTests
{
    [Fact]
    public async Task Points_and_writer_seqs_survive_a_reopen()
    {
        await using var h = EngineHarness.Open();
        var (steps, values) = Range(0, 5000, s => Math.Sin(s));
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps[..2500], values[..2500])));
        await h.Engine.WriteAsync(Batch("w", 2, (Key(), steps[2500..], values[2500..])));
        await h.ReopenAsync();

        Assert.Equal(5000, h.Engine.Recovery.Points);
        var read = h.Read(Key())!;
        Assert.Equal(values, read.Values.AsSpan(0, read.Count).ToArray());
        Assert.Equal(2ul, h.Engine.DurableSeq("w"));
        var retry = await h.Engine.WriteAsync(Batch("w", 2, (Key(), [0], [99.0])));
        Assert.Equal(WriteOutcome.Duplicate, retry.Outcome);
        Assert.Equal(Math.Sin(0), h.Read(Key())!.Values[0]);
    }

    [Fact]
    public async Task Each_open_writes_to_a_new_segment()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), [1], [1.0])));
        await h.ReopenAsync();
        await h.Engine.WriteAsync(Batch("w", 2, (Key(), [2], [2.0])));
        await h.ReopenAsync();
        Assert.Equal(3, WalRecovery.ListSegments(h.WalDirectory).Count);
        Assert.Equal(2, h.Read(Key())!.Count);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(11)]
    [InlineData(200)]
    public async Task A_torn_tail_is_truncated_logged_and_everything_before_it_kept(int cut)
    {
        await using var h = EngineHarness.Open();
        var (steps, values) = Range(0, 100, s => s);
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        await h.Engine.WriteAsync(Batch("w", 2, (Key(), [1000], [1.0])));
        await h.CloseAsync();

        // Cut the last frame short, as a crash in the middle of a write would.
        var segment = LastSegment(h);
        var length = new FileInfo(segment).Length;
        using (var file = File.Open(segment, FileMode.Open))
        {
            file.SetLength(length - Math.Min(cut, 30));
        }

        await h.ReopenAsyncAfterClose();
        var read = h.Read(Key())!;
        Assert.Equal(100, read.Count);
        Assert.Equal(1ul, h.Engine.DurableSeq("w"));
        Assert.NotNull(h.Engine.Recovery.TruncatedTail);
        Assert.Contains(h.Log, l => l.Contains("torn tail", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Garbage_after_the_last_frame_is_a_torn_tail()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), [1], [1.0])));
        await h.CloseAsync();
        File.AppendAllText(LastSegment(h), "partial garbage that is not a frame");
        var before = new FileInfo(LastSegment(h)).Length;

        await h.ReopenAsyncAfterClose();
        Assert.Equal(1, h.Read(Key())!.Count);
        Assert.True(new FileInfo(PreviousSegment(h)).Length < before);
    }

    [Fact]
    public async Task A_corrupt_record_followed_by_valid_ones_refuses_to_open_and_changes_nothing()
    {
        await using var h = EngineHarness.Open();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), [1], [1.0])));
        await h.Engine.WriteAsync(Batch("w", 2, (Key(), [2], [2.0])));
        await h.Engine.WriteAsync(Batch("w", 3, (Key(), [3], [3.0])));
        await h.CloseAsync();

        var segment = LastSegment(h);
        var bytes = File.ReadAllBytes(segment);
        bytes[WalFormat.SegmentHeaderSize + WalFormat.FrameHeaderSize + 6] ^= 0xFF; // inside the first frame's payload
        File.WriteAllBytes(segment, bytes);

        var e = Assert.Throws<WalCorruptionException>(() => StorageEngine.Open(h.Options()));
        Assert.Contains("CRC mismatch", e.Message, StringComparison.Ordinal);
        Assert.Contains("valid records follow", e.Message, StringComparison.Ordinal);
        Assert.Equal(bytes, File.ReadAllBytes(segment));
        Assert.Single(WalRecovery.ListSegments(h.WalDirectory));
    }

    [Fact]
    public async Task Async_durability_acknowledges_and_keeps_points_across_a_clean_close()
    {
        await using var h = EngineHarness.Open(Durability.Async);
        for (ulong seq = 1; seq <= 20; seq++)
        {
            var result = await h.Engine.WriteAsync(Batch("w", seq, (Key(), [(long)seq], [seq])));
            Assert.Equal(WriteOutcome.Durable, result.Outcome);
        }

        await h.ReopenAsync();
        Assert.Equal(20, h.Read(Key())!.Count);
    }

    [Fact]
    public void Random_writes_with_overwrites_read_like_a_last_write_wins_map_before_and_after_recovery()
    {
        var gen = Gen.Int[0, 40].Select(Gen.Double[-1e6, 1e6]).Array[1, 30].Array[1, 12];
        gen.Sample(requests =>
        {
            var h = EngineHarness.Open();
            try
            {
                var model = new SortedDictionary<long, double>();
                ulong seq = 0;
                foreach (var request in requests)
                {
                    var steps = request.Select(p => (long)p.Item1).ToArray();
                    var values = request.Select(p => p.Item2).ToArray();
                    h.Engine.WriteAsync(Batch("w", ++seq, (Key(), steps, values))).AsTask().GetAwaiter().GetResult();
                    for (var i = 0; i < steps.Length; i++)
                    {
                        model[steps[i]] = values[i];
                    }
                }

                Check(h.Read(Key())!, model);
                h.ReopenAsync().GetAwaiter().GetResult();
                Check(h.Read(Key())!, model);
            }
            finally
            {
                h.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }, iter: 40);

        static void Check(SeriesColumns read, SortedDictionary<long, double> model)
        {
            Assert.Equal(model.Keys, read.Steps.AsSpan(0, read.Count).ToArray());
            Assert.Equal(model.Values, read.Values.AsSpan(0, read.Count).ToArray());
        }
    }

    [Theory]
    [InlineData(0, 10, 1000)]
    [InlineData(500, -1, 300)]
    [InlineData(7, 0, 50)]
    public async Task Arithmetic_step_runs_are_stored_compactly_and_replay_exactly(long first, long stride, int count)
    {
        await using var h = EngineHarness.Open();
        var steps = Enumerable.Range(0, count).Select(i => first + (i * stride)).ToArray();
        var values = steps.Select(s => s * 1.5).ToArray();
        await h.Engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        var walBytes = h.Engine.WalBytes.Stored;
        Assert.True(walBytes < count * 12, $"{walBytes} WAL bytes for {count} points: steps were not stored as a run");
        await h.ReopenAsync();

        // Last write wins: with stride 0 every point is step 7 and the last value stays.
        var model = new SortedDictionary<long, double>();
        for (var i = 0; i < count; i++)
        {
            model[steps[i]] = values[i];
        }

        var read = h.Read(Key())!;
        Assert.Equal(model.Keys, read.Steps.AsSpan(0, read.Count).ToArray());
        Assert.Equal(model.Values, read.Values.AsSpan(0, read.Count).ToArray());
    }

    [Fact]
    public async Task Lz4_compressed_frames_replay_exactly_when_compression_is_on()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        var options = h.Options() with { WalCompressAboveBytes = 256 };
        var values = Enumerable.Range(0, 20_000).Select(i => (double)(i % 7)).ToArray();
        var steps = Enumerable.Range(0, 20_000).Select(i => (long)(i * 3 % 20_000)).ToArray();
        await using (var engine = StorageEngine.Open(options))
        {
            await engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
            Assert.True(engine.WalBytes.Stored < engine.WalBytes.Raw / 2, $"LZ4 should shrink this repetitive record: {engine.WalBytes}");
        }

        await using var reopened = StorageEngine.Open(options);
        var read = EngineHarness.Read(reopened, Key())!;
        Assert.Equal(20_000, read.Count);
        Assert.Equal(steps.Zip(values).OrderBy(p => p.First).Select(p => p.Second), read.Values.AsSpan(0, read.Count).ToArray());
    }

    [Fact]
    public async Task A_second_engine_on_the_same_directory_is_refused_while_the_first_runs()
    {
        await using var h = EngineHarness.Open();
        var e = Assert.Throws<IOException>(() => StorageEngine.Open(h.Options()));
        Assert.Contains("in use by another", e.Message, StringComparison.Ordinal);
        await h.ReopenAsync();
        Assert.NotNull(h.Engine);
    }

    private static string LastSegment(EngineHarness h) =>
        Path.Combine(h.WalDirectory, WalFormat.SegmentFileName(WalRecovery.ListSegments(h.WalDirectory)[^1]));

    private static string PreviousSegment(EngineHarness h)
    {
        var segments = WalRecovery.ListSegments(h.WalDirectory);
        return Path.Combine(h.WalDirectory, WalFormat.SegmentFileName(segments[^2]));
    }
}
