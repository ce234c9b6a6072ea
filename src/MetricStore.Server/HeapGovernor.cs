using System.Diagnostics;
using System.Runtime;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MetricStore.Server;

/// <summary>
/// Keeps the managed heap near what is live: a background gen2 collection when the heap has grown
/// more than a slack past what the last full collection left live, and a compaction of the heap
/// (large object heap included) when that collection left more free space than a bound, at most
/// once every <see cref="MinCompactionInterval"/>.
/// </summary>
/// <remarks>
/// The server's live data is mostly large arrays of numbers (the memory budget's columns) that
/// survive every collection. Seeing that, the GC lets the large object heap take several times as
/// much new allocation before its next gen2 collection, and on a machine with free memory nothing
/// else starts one. Nor does it compact that heap by default, so the space of dead arrays of many
/// sizes (columns of 64k, 100k and 1M points, rollups, page buffers) stays committed between the
/// live ones. Under ingest plus a dashboard, 417 MB of a 1,128 MB large object heap were dead
/// arrays or free space (a heap dump, docs/benchmarks.md, tenth session). A background collection marks the heap
/// concurrently and cheaply, since arrays of numbers hold no references. A compaction stops the
/// process while it moves the live arrays, so it is rare and logged with its length.
/// <para>
/// The GC is the process's, so this is the host's choice: <see cref="MetricStoreServerOptions.HeapSlackMiB"/>
/// and <see cref="MetricStoreServerOptions.HeapCompactFreeMiB"/> are off unless set, and
/// <c>metricstore serve</c> sets them.
/// </para>
/// </remarks>
internal sealed class HeapGovernor(long slackBytes, long compactFreeBytes, ILogger<HeapGovernor> log) : BackgroundService
{
    public static readonly TimeSpan MinCompactionInterval = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long the governor waits for the full collection it asked for to finish before it looks
    /// again. A request made while a background collection runs joins that one, and a request the
    /// GC declines never finishes. The governor used to wait for the gen2 count to move past the
    /// one it asked at, which such a request never moves: under 16 full reads plus ingest it then
    /// did nothing for 56 s, not even the compaction a finished collection called for, while
    /// 460-695 MiB of the heap lay free (docs/benchmarks.md, thirteenth session).
    /// </summary>
    public static readonly TimeSpan RequestPatience = TimeSpan.FromSeconds(2);

    private static readonly TimeSpan s_period = TimeSpan.FromMilliseconds(100);
    private long _collections;
    private long _compactions;

    /// <summary>Background collections this governor started.</summary>
    public long Collections => Interlocked.Read(ref _collections);

    /// <summary>Compacting collections this governor ran.</summary>
    public long Compactions => Interlocked.Read(ref _compactions);

    /// <summary>The last compaction this governor ran (null before the first), as the GC reported it right after.</summary>
    public Compaction? LastCompaction { get; private set; }

    /// <summary>A compaction the governor ran: the free space the full collection before it had left, and the free space it left.</summary>
    public sealed record Compaction(long FreeBeforeBytes, long FreeAfterBytes);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        log.LogInformation(
            "Heap governor: a background collection when the heap grows {Slack} MiB past its live size; a compaction when a full collection leaves over {Free} MiB free",
            slackBytes > 0 ? slackBytes >> 20 : "(off)",
            compactFreeBytes > 0 ? compactFreeBytes >> 20 : "(off)");
        using var timer = new PeriodicTimer(s_period);
        long? waitingFor = null; // the index of the last full collection when this governor asked for one
        var askedAt = 0L;
        var lastCompaction = long.MinValue;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var (index, live, free) = LastFullCollection();
                if (waitingFor is { } before)
                {
                    if (StillWaiting(before, index, Stopwatch.GetElapsedTime(askedAt)))
                    {
                        continue;
                    }

                    waitingFor = null;
                }

                if (compactFreeBytes > 0 && free > compactFreeBytes && index != 0
                    && (lastCompaction == long.MinValue || Stopwatch.GetElapsedTime(lastCompaction) >= MinCompactionInterval))
                {
                    lastCompaction = Stopwatch.GetTimestamp();
                    GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
                    GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                    var took = Stopwatch.GetElapsedTime(lastCompaction);
                    var after = GC.GetGCMemoryInfo(GCKind.FullBlocking).FragmentedBytes; // this one's, unless another blocking collection ran since
                    LastCompaction = new Compaction(free, after);
                    Interlocked.Increment(ref _compactions);
                    log.LogInformation("Compacted the heap: a full collection had left {Free} MiB free, the compaction left {After} MiB; it took {Ms:F0} ms", free >> 20, after >> 20, took.TotalMilliseconds);
                    continue;
                }

                if (slackBytes > 0 && GC.GetTotalMemory(forceFullCollection: false) > live + slackBytes)
                {
                    waitingFor = index;
                    askedAt = Stopwatch.GetTimestamp();
                    Interlocked.Increment(ref _collections);
                    GC.Collect(2, GCCollectionMode.Forced, blocking: false, compacting: false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping
        }
    }

    /// <summary>
    /// Whether a full collection asked for when the last one had <paramref name="indexAtAsk"/> has
    /// not finished yet: no full collection finished since (the one asked for, or one already running,
    /// which the request joined), and the patience is not spent.
    /// </summary>
    internal static bool StillWaiting(long indexAtAsk, long lastFullIndex, TimeSpan sinceAsked) =>
        lastFullIndex == indexAtAsk && sinceAsked < RequestPatience;

    /// <summary>The most recent full collection (background or blocking): its index (0 = none yet), the bytes it found live, and the free space it left.</summary>
    internal static (long Index, long Live, long Free) LastFullCollection()
    {
        var background = GC.GetGCMemoryInfo(GCKind.Background);
        var blocking = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        var last = background.Index >= blocking.Index ? background : blocking;
        return (last.Index, last.HeapSizeBytes - last.FragmentedBytes, last.FragmentedBytes);
    }
}
