using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using MetricStore.Core;
using MetricStore.Storage.Head;
using MetricStore.Storage.Query;
using MetricStore.Storage.Segments;

namespace MetricStore.Storage;

/// <summary>
/// Reads: every read sees the sealed row groups and the head of a series as one series sorted by
/// step, last write wins, and only durable points.
/// </summary>
public sealed partial class StorageEngine
{
    private readonly ConcurrentDictionary<string, List<SeriesHead>> _seriesByRun = new(StringComparer.Ordinal);
    private readonly PartCache _cache;
    private readonly ScanMemory _scanMemory;
    private readonly SegmentReaders _readers = new(OpenSegmentReaders);

    /// <summary>Idle open point-file readers kept for query-cache misses (each holds a file and its parsed footer).</summary>
    internal const int OpenSegmentReaders = 32;

    /// <summary>Open point-file readers kept idle for the next query-cache misses, and files opened so far (for tests).</summary>
    internal (int Idle, long Opened, long Decoded, int Footers) SegmentReaderCounts => (_readers.Idle, _readers.Opened, _readers.Decoded, _readers.Footers);

    /// <summary>Fine rollups built for cached row groups so far (for tests).</summary>
    internal long CacheRollupsBuilt => _cache.RollupsBuilt;
    private readonly ChunkRecycler _recycler;
    private readonly ConcurrentDictionary<int, byte> _changedSeries = new();

    /// <summary>Decoded row groups held for queries, and how often queries found them there.</summary>
    public (long Bytes, long Hits, long Misses) QueryCache => (_cache.Bytes, _cache.Hits, _cache.Misses);

    /// <summary>
    /// Bytes the head holds now, as <see cref="StorageOptions.MemoryBudgetBytes"/> counts them:
    /// the memory of the chunks written or being sealed (<see cref="HeadChunk.MemoryBytes"/>: what
    /// they can hold, not only the points in them), plus the chunks kept for reuse.
    /// </summary>
    public long HeadBytes => UnsealedChunkBytes + (_recycler.KeptPoints * HeadChunk.BytesPerPoint);

    /// <summary>Memory of the head's chunks written since the last seal or being sealed.</summary>
    internal long UnsealedChunkBytes => Interlocked.Read(ref _unsealedBytes) + Interlocked.Read(ref _sealingBytes);

    /// <summary>
    /// Bytes of evicted row-group columns kept for the next cache misses (at most the cache floor),
    /// and of evicted row groups reads still hold.
    /// </summary>
    public long PooledColumnBytes => _recycler.ColumnBytes + _cache.HeldEvictedBytes;

    /// <summary>Bytes of evicted row groups that reads still hold (for tests).</summary>
    internal long HeldEvictedBytes => _cache.HeldEvictedBytes;

    /// <summary>
    /// What the query cache may hold now: the memory budget left by the head and the pooled and
    /// held evicted columns, within its floor and its maximum.
    /// </summary>
    public long QueryCacheCapacity() =>
        Math.Clamp(_options.MemoryBudgetBytes - HeadBytes - PooledColumnBytes, QueryCacheFloor, _options.QueryCacheBytes);

    private long QueryCacheFloor => Math.Min(_options.QueryCacheFloorBytes, _options.QueryCacheBytes);

    /// <summary>
    /// Bytes and rows of the live point files in the newest manifest of <paramref name="dataDirectory"/>
    /// ((0, 0) before the first seal). Safe on the directory of a running server (the bench harness).
    /// </summary>
    public static (long Bytes, long Rows) LiveSegmentTotals(string dataDirectory)
    {
        var manifest = Manifest.LoadLatest(new StorageOptions { DataDirectory = dataDirectory }.ManifestDirectory);
        return manifest is null ? (0, 0) : (manifest.Segments.Sum(s => s.Bytes), manifest.Segments.Sum(s => s.Rows));
    }

    /// <summary>Bytes of columns scans hold now, the most they held at once, and the scans waiting for their first (<see cref="StorageOptions.ScanMemoryBytes"/>).</summary>
    public (long Used, long Peak, int Waiting) ScanMemoryUse => (_scanMemory.UsedBytes, _scanMemory.PeakBytes, _scanMemory.Waiting);

    /// <summary>The bound on <see cref="ScanMemoryUse"/>: <see cref="StorageOptions.ScanMemoryBytes"/>.</summary>
    public long ScanMemoryLimit => _scanMemory.LimitBytes;

    /// <summary>Reads inside a read scope now: holding a snapshot, pinned row groups and the epoch that keeps sealed head chunks from reuse (for tests).</summary>
    internal int ActiveReads => _recycler.ActiveReaders;

    /// <summary>
    /// Sealed head chunks given out again instead of allocated, how many are kept for that now, and
    /// how many cache misses decoded into the columns of an evicted row group.
    /// </summary>
    public (long Reused, long KeptPoints, long ReusedColumns) HeadChunkReuse => (_recycler.Reused, _recycler.KeptPoints, _recycler.ReusedColumns);

    private void IndexByRun(SeriesHead head)
    {
        var list = _seriesByRun.GetOrAdd(head.Key.RunId, static _ => []);
        lock (list)
        {
            list.Add(head);
        }
    }

    private SeriesHead[] HeadsOf(string runId)
    {
        if (!_seriesByRun.TryGetValue(runId, out var list))
        {
            return [];
        }

        lock (list)
        {
            return [.. list];
        }
    }

    /// <summary>Whether the series was ever written (its first write may still be on its way to disk).</summary>
    public bool HasSeries(SeriesKey key) => _series.ContainsKey(key?.Canonical ?? throw new ArgumentNullException(nameof(key)));

    /// <summary>Every series of a run, sorted by canonical key.</summary>
    public IReadOnlyList<SeriesKey> ListSeries(string runId) =>
        [.. HeadsOf(runId).Select(h => h.Key).OrderBy(k => k.Canonical, StringComparer.Ordinal)];

    /// <summary>
    /// The summary of a series (count, first and last point, min and max of finite values), kept at
    /// ingest and recomputed from rollups after a step was re-logged; null when the series does not
    /// exist or has no durable point yet.
    /// </summary>
    public async Task<SeriesSummary?> GetSummaryAsync(SeriesKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _series.TryGetValue(key.Canonical, out var head) ? await SummaryAsync(head) : null;
    }

    /// <summary>The summaries of the series of these runs (all metrics, or only those named), runs in the given order.</summary>
    public async Task<IReadOnlyList<SeriesSummary>> SummariesAsync(IEnumerable<string> runIds, IReadOnlySet<string>? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(runIds);
        var result = new List<SeriesSummary>();
        foreach (var runId in runIds)
        {
            var heads = HeadsOf(runId);
            Array.Sort(heads, static (a, b) => string.CompareOrdinal(a.Key.Canonical, b.Key.Canonical));
            foreach (var head in heads)
            {
                if ((metrics is null || metrics.Count == 0 || metrics.Contains(head.Key.Metric)) && await SummaryAsync(head) is { } summary)
                {
                    result.Add(summary);
                }
            }
        }

        return result;
    }

    /// <summary>
    /// The summaries of the series written since the last call (every series after open), for
    /// copying into the tracking store where run search filters on them.
    /// </summary>
    public async Task<IReadOnlyList<SeriesSummary>> TakeChangedSummariesAsync()
    {
        var result = new List<SeriesSummary>();
        foreach (var id in _changedSeries.Keys)
        {
            _changedSeries.TryRemove(id, out _);
            // The writer thread added the series to the list before it marked it changed, and the
            // concurrent dictionary's fences make that add visible here.
            var head = _seriesById[id];
            if (await SummaryAsync(head) is { } summary)
            {
                result.Add(summary);
            }
        }

        return result;
    }

    /// <summary>Offers these series again at the next <see cref="TakeChangedSummariesAsync"/> (after a failed copy).</summary>
    public void MarkSummariesChanged(IEnumerable<SeriesKey> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        foreach (var key in keys)
        {
            if (_series.TryGetValue(key.Canonical, out var head))
            {
                _changedSeries.TryAdd(head.Id, 0);
            }
        }
    }

    private async Task<SeriesSummary?> SummaryAsync(SeriesHead head)
    {
        if (!head.TryGetSummary(out var aggregate))
        {
            using var read = BeginRead();
            var (segments, chunks, version) = head.Snapshot();
            aggregate = Aggregate.Empty;
            foreach (var run in await SeriesResolver.ResolveAsync(segments, chunks, _cache, read.Pins, _options.SegmentDirectory, long.MinValue, long.MaxValue))
            {
                aggregate.Add(await run.TotalAsync());
            }

            head.SetSummary(aggregate, version);
        }

        return aggregate.Count == 0 ? null : new SeriesSummary(head.Key, aggregate);
    }

    /// <summary>
    /// Exact per-bucket aggregates of a series over the grid, plus a MinMaxLTTB line of
    /// <paramref name="linePoints"/> real points when it is not 0; null when the series does not exist.
    /// Dispose the result to give its bucket array back to the pool.
    /// </summary>
    public async Task<DownsampledSeries?> DownsampleAsync(SeriesKey key, BucketGrid grid, int linePoints = 0)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(grid);
        if (!_series.TryGetValue(key.Canonical, out var head))
        {
            return null;
        }

        using var read = BeginRead();
        var runs = await ResolveRunsAsync(head, grid.Start, grid.End, read.Pins);
        var (lineSteps, lineValues) = linePoints == 0 ? ([], []) : await Downsampler.LineAsync(runs, grid.Start, grid.End, linePoints);
        return new DownsampledSeries(grid, await Downsampler.BucketsAsync(runs, grid), lineSteps, lineValues);
    }

    /// <summary>
    /// The points of a series with fromStep &lt;= step &lt;= toStep in step order, as slices of at most
    /// <paramref name="maxChunk"/> points over the engine's own arrays (valid until the next slice is
    /// asked for; copy what you keep). Nothing is yielded for a series that does not exist.
    /// </summary>
    public async IAsyncEnumerable<PointSlice> ReadPointsAsync(SeriesKey key, long fromStep, long toStep, int maxChunk, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChunk, 1);
        if (!_series.TryGetValue(key.Canonical, out var head))
        {
            yield break;
        }

        // The slices point into head chunks and cached row groups, and the snapshot lists files a
        // compaction may replace meanwhile: a read scope holds all three (chunks from reuse, row
        // groups pinned, files from deletion). A read holds one for a window of about
        // ReadWindowPoints points, then resolves the series again from the step after the last run
        // it sent, so a long read to a slow client holds none of them for its whole length (one
        // scope over a whole read kept everything other reads evicted from reuse while epochs
        // guarded the cache, docs/benchmarks.md, ninth session). A later window sees the series as
        // it is then: points written meanwhile at later steps are included.
        var scan = new ScanBuffers(this, cancellationToken);
        try
        {
            for (var from = fromStep; from <= toStep;)
            {
                long? next = null;
                long wait;
                using (var read = BeginRead())
                {
                    var runs = await ResolveRunsAsync(head, from, toStep, read.Pins);
                    wait = await scan.BeginAsync(runs);
                    long sent = 0;
                    for (var r = 0; wait == 0 && r < runs.Count; r++)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        var run = runs[r];
                        sent += run.Count;
                        var windowEnds = sent >= _options.ReadWindowPoints && r + 1 < runs.Count;
                        if (r + 1 < runs.Count && !windowEnds)
                        {
                            scan.Start(r + 1); // decode the next row group while this one is sent
                        }

                        var p = await scan.PointsAsync(r);
                        var lo = SortedRun.LowerBound(p.Steps, run.Count, from);
                        var hi = toStep == long.MaxValue ? run.Count : SortedRun.LowerBound(p.Steps, run.Count, toStep + 1);
                        for (int i = lo, n; i < hi; i += n)
                        {
                            n = Math.Min(maxChunk, hi - i);
                            yield return new PointSlice(p, i, n);
                        }

                        run.Release();
                        if (windowEnds)
                        {
                            // Runs are disjoint and sorted: every step up to this run's last is sent.
                            next = run.MaxStep == long.MaxValue ? null : run.MaxStep + 1;
                            break;
                        }
                    }
                }

                if (wait > 0)
                {
                    // A scan waits for its columns outside any read scope: holding a snapshot, pins and
                    // the epoch that keeps sealed head chunks from reuse while it waited, sixteen
                    // waiting scans left every seal's chunks to the garbage collector. Then it
                    // resolves the window again.
                    await scan.TakeAsync(wait);
                    continue;
                }

                if (next is not { } resume)
                {
                    break;
                }

                from = resume;
            }
        }
        finally
        {
            await scan.DisposeAsync(); // its columns were seen by this read only
        }
    }

    /// <summary>
    /// A raw read of more than <see cref="ScanRowGroups"/> sealed row groups, or of row groups the
    /// cache lacks that take more than the cache holds now, is a scan (a long series read in full, a
    /// bench verifying what it wrote; see ScanBuffers.IsScan): the row groups the cache does not hold are
    /// decoded into two columns of the read's own, one being sent while the next decodes, instead of
    /// into the cache. So a scan neither evicts the row groups dashboards keep reading nor
    /// allocates a row group's columns per miss; scans used to fill and empty the cache with
    /// megabyte arrays as fast as they read (docs/benchmarks.md, ninth session).
    /// Row groups the cache holds are read from it. Smaller reads go through the cache as before:
    /// at 16 full row groups (16M points, 420 MB of cache) a read is more than the default cache
    /// holds, while a dashboard's repeated full read of a 10M-step series stays warm (with a bound
    /// of 2 row groups that read decoded every time: 92.7–122.7M points/s against 108.7–141.9M,
    /// docs/benchmarks.md, ninth session).
    /// </summary>
    internal const int ScanRowGroups = 16;

    /// <summary>
    /// The decode targets of one scan (<see cref="ScanRowGroups"/>): two sets of columns, by the
    /// parity of the run's index in its window, one being sent while the next decodes; or, when
    /// <see cref="ScanMemory"/> has no room for a second set or another scan waits for its first,
    /// one set, into which each run decodes when it is asked for. Every set is taken from the
    /// engine's scan memory and given back when the scan ends.
    /// </summary>
    private sealed class ScanBuffers(StorageEngine engine, CancellationToken cancellationToken) : IAsyncDisposable
    {
        private readonly SeriesColumns?[] _columns = new SeriesColumns?[2];
        private readonly Task<SeriesColumns>?[] _loads = new Task<SeriesColumns>?[2];
        private readonly bool[] _onDemand = new bool[2]; // the slot's run decodes into the one set when asked for
        private List<SortedRun> _runs = [];
        private bool _scan;
        private bool _oneSet;

        /// <summary>
        /// A window's runs (every run left to read, of which the window reads the first); starts
        /// loading the first. Each window decides again whether a read that is not yet a scan
        /// becomes one (the cache shrinks when ingest starts: sixteen full reads that began while
        /// the series fitted each decoded their misses into the cache for the rest of the read,
        /// docs/benchmarks.md, thirteenth session); a scan stays one. Each window tries for two sets
        /// of columns again. (A window starts nothing past its last run, and any load still running
        /// is awaited first, so none writes into columns the new window decodes into.)
        /// </summary>
        public async ValueTask<long> BeginAsync(List<SortedRun> windowRuns)
        {
            await WaitAsync();
            _runs = windowRuns;
            if (!_scan)
            {
                _scan = IsScan(windowRuns);
            }

            _loads[0] = _loads[1] = null;
            _onDemand[0] = _onDemand[1] = false;
            _oneSet = false;
            if (_scan && LargestMissing(windowRuns) is var rows and > 0 && !HoldsFor(rows))
            {
                // One set for the largest row group the scan decodes itself, so it never waits within a window.
                Release(0);
                Release(1);
                var bytes = SetBytes(rows);
                if (!engine._scanMemory.TryTake(bytes))
                {
                    return bytes;
                }

                Hold(0, bytes);
            }

            Start(0);
            return 0;
        }

        /// <summary>
        /// Waits in line for <paramref name="bytes"/> of scan memory (<see cref="BeginAsync"/> asked for them)
        /// and holds them as one set of columns; the caller holds no read scope meanwhile.
        /// </summary>
        public async ValueTask TakeAsync(long bytes)
        {
            await engine._scanMemory.TakeAsync(bytes, cancellationToken);
            Hold(0, bytes);
        }

        /// <summary>The most rows of a sealed row group among these runs that the cache lacks now (0 for none).</summary>
        private int LargestMissing(List<SortedRun> runs)
        {
            var rows = 0;
            foreach (var run in runs)
            {
                if (run.Segment is { } part && !engine._cache.Contains(part))
                {
                    rows = Math.Max(rows, part.Rows);
                }
            }

            return rows;
        }

        private bool HoldsFor(int rows) => _columns[0]?.Steps.Length >= rows || _columns[1]?.Steps.Length >= rows;

        /// <summary>
        /// Starts loading run <paramref name="r"/>: into this scan's columns when it is a sealed row
        /// group the cache lacks, else through the cache; with one set of columns, only marks it to
        /// decode when asked for.
        /// </summary>
        public void Start(int r)
        {
            if (r >= _runs.Count)
            {
                return;
            }

            var slot = r & 1;
            _loads[slot] = null;
            _onDemand[slot] = false;
            if (!_scan || _runs[r].Segment is not { } part || engine._cache.Contains(part))
            {
                _runs[r].Prefetch();
                return;
            }

            // This slot's columns last held run r - 2, whose slices the caller is done with; the
            // other slot's may still be decoding run r - 1 or holding its slices.
            var others = _columns[slot ^ 1] is not null;
            if (others && engine._scanMemory.Waiting > 0)
            {
                _oneSet = true; // another scan waits for its first columns: this one keeps one set
            }

            var columns = _oneSet ? null : TryColumns(slot, part.Rows);
            if (columns is null)
            {
                _oneSet = true;
                if (others)
                {
                    Release(slot);
                }

                _onDemand[slot] = true;
                return;
            }

            var path = Path.Combine(engine._options.SegmentDirectory, part.File);
            _loads[slot] = Task.Run(() => engine._readers.ReadAsync(path, part.RowGroup, part.Float32, CancellationToken.None, columns));
        }

        public async ValueTask<SeriesColumns> PointsAsync(int r)
        {
            var slot = r & 1;
            if (_loads[slot] is { } load)
            {
                return await load;
            }

            if (!_onDemand[slot])
            {
                return await _runs[r].PointsAsync();
            }

            // One set: the caller is done with the slices of run r - 1, which it may hold.
            await WaitAsync();
            var part = _runs[r].Segment!;
            var at = _columns[0] is not null ? 0 : 1;
            var columns = _columns[at] is { } held && held.Steps.Length >= part.Rows ? held : await TakeColumnsAsync(at, part.Rows);
            var path = Path.Combine(engine._options.SegmentDirectory, part.File);
            return await engine._readers.ReadAsync(path, part.RowGroup, part.Float32, cancellationToken, columns);
        }

        /// <summary>The slot's columns when they hold <paramref name="rows"/>, else new ones if the scan memory has room now; null when it has not.</summary>
        private SeriesColumns? TryColumns(int slot, int rows)
        {
            if (_columns[slot] is { } held && held.Steps.Length >= rows)
            {
                return held;
            }

            Release(slot);
            var bytes = SetBytes(rows);
            return engine._scanMemory.TryTake(bytes) ? Hold(slot, bytes) : null;
        }

        /// <summary>New columns for <paramref name="rows"/> in the slot, waiting in line for the scan memory (the scan holds no other set).</summary>
        private async ValueTask<SeriesColumns> TakeColumnsAsync(int slot, int rows)
        {
            Release(slot);
            var bytes = SetBytes(rows);
            await engine._scanMemory.TakeAsync(bytes, cancellationToken);
            return Hold(slot, bytes);
        }

        /// <summary>The scan memory a set for <paramref name="rows"/> takes: columns of the capacity the recycler rounds to.</summary>
        private static long SetBytes(int rows) => (long)ChunkRecycler.ColumnCapacity(rows) * HeadChunk.ColumnBytesPerPoint;

        /// <summary>
        /// Columns in the slot for <paramref name="bytes"/> of scan memory already taken: free ones of
        /// exactly that size from the recycler, else new ones. So a set's columns are the bytes it took,
        /// and <see cref="Release"/> gives back what they hold.
        /// </summary>
        private SeriesColumns Hold(int slot, long bytes)
        {
            var capacity = (int)(bytes / HeadChunk.ColumnBytesPerPoint);
            return _columns[slot] = engine._recycler.RentColumns(capacity, capacity) ?? new SeriesColumns(capacity);
        }

        /// <summary>Gives the slot's columns back to the recycler and their bytes to the scan memory.</summary>
        private void Release(int slot)
        {
            if (_columns[slot] is { } columns)
            {
                _columns[slot] = null;
                engine._recycler.ReturnColumns(columns);
                engine._scanMemory.Give(ChunkRecycler.ColumnsBytes(columns));
            }
        }

        /// <summary>
        /// Whether a read of these runs is a scan: more than <see cref="ScanRowGroups"/> sealed row
        /// groups, or row groups the cache lacks that would take more than the whole cache holds
        /// now. Under ingest the cache is at its floor (64 MiB by default), and a dashboard's full
        /// read of a 10M-step series (10 row groups, 260 MB) went through it: every read decoded
        /// 240 MB into new columns and evicted everything else (docs/benchmarks.md, tenth session).
        /// On an idle server the same read fits and stays warm.
        /// </summary>
        private bool IsScan(List<SortedRun> runs)
        {
            var sealedGroups = 0;
            long missing = 0;
            foreach (var run in runs)
            {
                if (run.Segment is { } part)
                {
                    sealedGroups++;
                    if (!engine._cache.Contains(part))
                    {
                        missing += (long)part.Rows * HeadChunk.BytesPerPoint;
                    }
                }
            }

            return sealedGroups > ScanRowGroups || missing > engine._cache.Capacity;
        }

        /// <summary>Waits for the decodes still running (a failed one fails the read that awaits it, not this).</summary>
        private async ValueTask WaitAsync()
        {
            foreach (var load in _loads)
            {
                if (load is not null)
                {
                    try
                    {
                        await load;
                    }
                    catch (Exception) when (load.IsFaulted)
                    {
                        // the read that wanted it has failed or ended already
                    }
                }
            }
        }

        /// <summary>Waits for a decode still writing into its columns, then gives the columns back.</summary>
        public async ValueTask DisposeAsync()
        {
            await WaitAsync();
            Release(0);
            Release(1);
        }
    }

    /// <summary>
    /// The durable points of a series in [fromStep, toStep], sorted by step, last write wins, in one
    /// copy; null when the series does not exist. For large reads use <see cref="ReadPointsAsync"/>.
    /// </summary>
    public async ValueTask<SeriesColumns?> ReadSeriesAsync(SeriesKey key, long fromStep = long.MinValue, long toStep = long.MaxValue, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!_series.ContainsKey(key.Canonical))
        {
            return null;
        }

        // Slices come sorted and disjoint: one copy into one set of columns.
        var result = new SeriesColumns(0);
        await foreach (var slice in ReadPointsAsync(key, fromStep, toStep, int.MaxValue, cancellationToken))
        {
            var at = result.Count;
            result.EnsureCapacity(at + slice.Count);
            slice.Steps.CopyTo(result.Steps.AsSpan(at));
            slice.Values.CopyTo(result.Values.AsSpan(at));
            slice.Timestamps.CopyTo(result.Timestamps.AsSpan(at));
            result.Count = at + slice.Count;
        }

        return result;
    }

    /// <summary>
    /// Whether every value of the series with fromStep &lt;= step &lt;= toStep is exactly a float32, as
    /// of now, so a reader can be sent 4-byte values without losing anything. Sealed row groups answer
    /// from their file's value type without being read (a row group stored as double counts as no,
    /// even where the range holds only float32 values); points in memory are scanned over the range. Points written after
    /// this call may not fit, so a reader that relies on the answer checks each value it narrows.
    /// </summary>
    public async ValueTask<bool> ValuesFitFloat32Async(SeriesKey key, long fromStep = long.MinValue, long toStep = long.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!_series.TryGetValue(key.Canonical, out var head))
        {
            return true;
        }

        using var read = BeginRead();
        var runs = await ResolveRunsAsync(head, fromStep, toStep, read.Pins);
        return runs.TrueForAll(r => r.ValuesFitFloat32(fromStep, toStep));
    }

    /// <summary>
    /// The series' disjoint sorted runs meeting [from, to], from a snapshot taken now. Call it inside
    /// a read scope (<see cref="BeginRead"/>): the files the snapshot lists stay until the scope
    /// ends, even if a compaction replaces them meanwhile (<see cref="ChunkRecycler.RetireAsync"/>),
    /// and so do the cached row groups the runs load, pinned with <paramref name="pins"/>.
    /// </summary>
    private Task<List<SortedRun>> ResolveRunsAsync(SeriesHead head, long from, long to, CachePins pins)
    {
        var (segments, chunks, _) = head.Snapshot();
        return SeriesResolver.ResolveAsync(segments, chunks, _cache, pins, _options.SegmentDirectory, from, to);
    }

    /// <summary>
    /// A read scope: head chunks and replaced point files stay for it (an epoch), and the cached row
    /// groups it loads stay pinned (<see cref="ReadHold.Pins"/>) until it is disposed.
    /// </summary>
    private ReadHold BeginRead() => new(_recycler.Read(), new CachePins(), _cache);

    /// <summary>See <see cref="BeginRead"/>.</summary>
    private readonly struct ReadHold(ReadScope epoch, CachePins pins, PartCache cache) : IDisposable
    {
        public CachePins Pins => pins;

        public void Dispose()
        {
            cache.Unpin(pins);
            epoch.Dispose();
        }
    }
}

/// <summary>Points [Offset, Offset + Count) of <see cref="Source"/>.</summary>
public readonly record struct PointSlice(SeriesColumns Source, int Offset, int Count)
{
    public ReadOnlySpan<long> Steps => Source.Steps.AsSpan(Offset, Count);

    public ReadOnlySpan<double> Values => Source.Values.AsSpan(Offset, Count);

    public ReadOnlySpan<long> Timestamps => Source.Timestamps.AsSpan(Offset, Count);
}

/// <summary>A series and its summary.</summary>
public sealed record SeriesSummary(SeriesKey Key, Aggregate Aggregate);
