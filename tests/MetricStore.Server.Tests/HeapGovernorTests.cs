using System.Diagnostics;
using MetricStore.Core;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>
/// The heap governor with a real server: it starts background collections when the heap grows past
/// its slack, compacts when a full collection leaves more free space than its bound, does neither
/// under bounds the heap never reaches, and is off unless the host turns it on.
/// </summary>
public sealed class HeapGovernorTests
{
    [Fact]
    public async Task Grows_past_the_slack_start_background_collections_and_a_large_slack_starts_none()
    {
        using var tightDirectory = new TempDirectory();
        using var looseDirectory = new TempDirectory();
        await using var tight = await StartAsync(tightDirectory.Path, slackMiB: 16, compactMiB: 0);
        await using var loose = await StartAsync(looseDirectory.Path, slackMiB: 64 * 1024, compactMiB: 64 * 1024);
        var governor = tight.HeapGovernor!;
        var idle = loose.HeapGovernor!;
        Assert.Equal(0, governor.Compactions);

        // 4 MiB of garbage at a time, in the large object heap, which only a gen2 collection frees.
        var waited = Stopwatch.StartNew();
        while (governor.Collections == 0 && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            for (var i = 0; i < 16; i++)
            {
                GC.KeepAlive(new long[512 * 1024]);
            }

            await Task.Delay(20);
        }

        Assert.True(governor.Collections > 0, "no background collection after allocating past the slack");
        Assert.Equal(0, governor.Compactions); // its compaction is off
        Assert.Equal(0, idle.Collections);
        Assert.Equal(0, idle.Compactions);
    }

    [Fact]
    public void A_request_that_joins_a_running_background_collection_ends_when_that_one_finishes()
    {
        // Small live objects make a background collection mark for a while.
        var graph = new object[3_000_000];
        for (var i = 0; i < graph.Length; i++)
        {
            graph[i] = new byte[24];
        }

        // The GC's own request, then the governor's while it runs: the governor's joins it, and the
        // gen2 count it used to wait on does not move for it.
        var (before, _, _) = HeapGovernor.LastFullCollection();
        GC.Collect(2, GCCollectionMode.Forced, blocking: false, compacting: false);
        GC.Collect(2, GCCollectionMode.Forced, blocking: false, compacting: false);

        var waited = Stopwatch.StartNew();
        while (HeapGovernor.LastFullCollection().Index == before && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            Thread.Sleep(10);
        }

        var (after, _, _) = HeapGovernor.LastFullCollection();
        Assert.NotEqual(before, after);
        Assert.False(HeapGovernor.StillWaiting(before, after, TimeSpan.Zero), "still waiting after a full collection finished");
        Assert.False(HeapGovernor.StillWaiting(before, before, HeapGovernor.RequestPatience), "still waiting past its patience");
        GC.KeepAlive(graph);
    }

    [Fact]
    public async Task A_full_collection_that_leaves_much_free_space_is_followed_by_a_compaction()
    {
        using var directory = new TempDirectory();
        using var looseDirectory = new TempDirectory();
        await using var server = await StartAsync(directory.Path, slackMiB: 0, compactMiB: 32);
        await using var loose = await StartAsync(looseDirectory.Path, slackMiB: 0, compactMiB: 64 * 1024);
        var governor = server.HeapGovernor!;

        // Every other 1 MiB array stays live: a full collection frees the others in place, and the
        // large object heap is not compacted unless asked. The test's own collection is not
        // compacting, so it waits for the governor's before it makes another.
        var kept = new List<byte[]>();
        var waited = Stopwatch.StartNew();
        while (governor.Compactions == 0 && waited.Elapsed < TimeSpan.FromSeconds(30))
        {
            for (var i = 0; i < 128; i++)
            {
                var array = new byte[1 << 20];
                if (i % 2 == 0)
                {
                    kept.Add(array);
                }
            }

            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: false);
            var settle = Stopwatch.StartNew();
            while (governor.Compactions == 0 && settle.Elapsed < TimeSpan.FromSeconds(3))
            {
                await Task.Delay(20);
            }

            GC.KeepAlive(kept);
            kept.Clear();
        }

        Assert.True(governor.Compactions > 0, "no compaction after a full collection left 64 MiB free");
        var compaction = governor.LastCompaction!;
        Assert.True(compaction.FreeBeforeBytes > 32L << 20, $"compacted with {compaction.FreeBeforeBytes >> 20} MiB free, under its bound");
        Assert.True(compaction.FreeAfterBytes < compaction.FreeBeforeBytes / 2, $"the compaction left {compaction.FreeAfterBytes >> 20} MiB free of {compaction.FreeBeforeBytes >> 20}"); // the large object heap's too
        Assert.Equal(0, governor.Collections); // its background collections are off
        await Task.Delay(500); // the other governor's ticks since: a bound the free space never reached starts nothing
        Assert.Equal(0, loose.HeapGovernor!.Compactions);
    }

    [Fact]
    public async Task The_governor_is_off_unless_the_host_turns_it_on()
    {
        using var directory = new TempDirectory();
        await using var server = await MetricStoreServer.StartAsync(new MetricStoreServerOptions { DataDirectory = directory.Path, GrpcPort = 0, HttpPort = 0 });
        Assert.Null(server.HeapGovernor);
    }

    [Theory]
    [InlineData(-1, 0, "heap slack -1 MiB")]
    [InlineData(0, -2, "heap compaction threshold -2 MiB")]
    public async Task Negative_bounds_are_refused_naming_them(int slackMiB, int compactMiB, string expected)
    {
        using var directory = new TempDirectory();
        var e = await Assert.ThrowsAsync<MetricStoreException>(() => StartAsync(directory.Path, slackMiB, compactMiB));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(directory.Path, "meta.db")));
    }

    private static Task<MetricStoreServer> StartAsync(string directory, int slackMiB, int compactMiB) =>
        MetricStoreServer.StartAsync(new MetricStoreServerOptions
        {
            DataDirectory = directory,
            GrpcPort = 0,
            HttpPort = 0,
            HeapSlackMiB = slackMiB,
            HeapCompactFreeMiB = compactMiB,
        });
}
