using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>
/// Query-cache misses reuse open point-file readers (a footer is parsed once per file, not per
/// row group), and a file compaction removed is not kept open.
/// </summary>
public sealed class SegmentReadersTests
{
    private const int Points = 20_000;

    [Fact]
    public async Task Misses_and_compaction_parse_a_file_footer_once_and_compaction_leaves_no_removed_file_open()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        await using var engine = StorageEngine.Open(h.Options() with { CompactAtSegments = 2, QueryCacheBytes = 0 }); // no cache: every read misses
        ulong seq = 0;
        long openedAfterReads = 0;
        for (var seal = 0; seal < 2; seal++)
        {
            for (var i = 0; i < 4; i++)
            {
                var (steps, values) = Range(seal * Points, Points, s => (i * 1_000_000) + s);
                await engine.WriteAsync(Batch("w", ++seq, (Key($"m{i}"), steps, values)));
            }

            await engine.SealNowAsync();
            if (seal == 0)
            {
                // One file, four row groups, each read twice: one open.
                var opened = engine.SegmentReaderCounts.Opened;
                await ReadAllAsync(engine, Points);
                await ReadAllAsync(engine, Points);
                Assert.Equal(opened + 1, engine.SegmentReaderCounts.Opened);
                Assert.Equal(1, engine.SegmentReaderCounts.Idle);
                openedAfterReads = engine.SegmentReaderCounts.Opened;
            }
        }

        // Compaction read the 4 row groups of each input through the kept readers: the first file's
        // reader was idle from the reads above, so only the second file was opened, once.
        await engine.CompactionIdleAsync();
        Assert.Equal(1, engine.Compactions);
        Assert.Equal(openedAfterReads + 1, engine.SegmentReaderCounts.Opened);
        var segments = Path.Combine(h.DataDirectory, "segments");
        Assert.Empty(OpenDeletedFiles(segments));
        await ReadAllAsync(engine, 2 * Points);
        Assert.Empty(OpenDeletedFiles(segments));
        Assert.Equal(1, engine.SegmentReaderCounts.Idle); // the compacted file only
        Assert.Equal(1, engine.SegmentReaderCounts.Footers); // the removed files' parsed footers went with them
    }

    /// <summary>This process's open files under the directory that were deleted (Linux: /proc/self/fd).</summary>
    private static List<string> OpenDeletedFiles(string directory)
    {
        var open = new List<string>();
        foreach (var fd in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget is { } target && target.StartsWith(directory, StringComparison.Ordinal) && target.EndsWith(" (deleted)", StringComparison.Ordinal))
                {
                    open.Add(target);
                }
            }
            catch (IOException)
            {
                // closed while listed
            }
        }

        return open;
    }

    private static async Task ReadAllAsync(StorageEngine engine, int points)
    {
        for (var i = 0; i < 4; i++)
        {
            var read = (await engine.ReadSeriesAsync(Key($"m{i}")))!;
            Assert.Equal(Enumerable.Range(0, points).Select(s => (i * 1_000_000.0) + s), read.Values.AsSpan(0, read.Count).ToArray());
        }
    }
}
