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
    /// points written or being sealed at <see cref="HeadChunk.BytesPerPoint"/> each, plus the
    /// chunks kept for reuse.
    /// </summary>
    public long HeadBytes =>
        ((Interlocked.Read(ref _unsealedPoints) + Interlocked.Read(ref _sealingPoints)) * HeadChunk.BytesPerPoint)
        + (_recycler.KeptPoints * HeadChunk.BytesPerPoint);

    /// <summary>
    /// Bytes of evicted row-group columns kept for the next cache misses (at most the cache floor),
    /// and of evicted row groups reads still hold.
    /// </summary>
    public long PooledColumnBytes => _recycler.ColumnBytes + _cache.HeldEvictedBytes;

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
        var scan = new ScanBuffers(this);
        try
        {
            for (var from = fromStep; from <= toStep;)
            {
                long? next = null;
                using (var read = BeginRead())
                {
                    var runs = await ResolveRunsAsync(head, from, toStep, read.Pins);
                    await scan.BeginAsync(runs);
                    long sent = 0;
                    for (var r = 0; r < runs.Count; r++)
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

    /// <summary>The two decode targets of one scan (<see cref="ScanRowGroups"/>), by the parity of the run's index in its window.</summary>
    private sealed class ScanBuffers(StorageEngine engine) : IAsyncDisposable
    {
        private readonly SeriesColumns?[] _columns = new SeriesColumns?[2];
        private readonly Task<SeriesColumns>?[] _loads = new Task<SeriesColumns>?[2];
        private List<SortedRun> _runs = [];
        private bool? _scan;

        /// <summary>
        /// A window's runs (every run left to read, of which the window reads the first); starts
        /// loading the first. The first window decides whether the read is a scan, for the whole
        /// read. (A window starts nothing past its last run, and any load still running is awaited
        /// first, so none writes into columns the new window decodes into.)
        /// </summary>
        public async ValueTask BeginAsync(List<SortedRun> windowRuns)
        {
            await WaitAsync();
            _runs = windowRuns;
            _scan ??= IsScan(windowRuns);
            _loads[0] = _loads[1] = null;
            Start(0);
        }

        /// <summary>Starts loading run <paramref name="r"/>: into this scan's columns when it is a sealed row group the cache lacks, else through the cache.</summary>
        public void Start(int r)
        {
            if (r >= _runs.Count)
            {
                return;
            }

            var slot = r & 1;
            _loads[slot] = null;
            if (_scan != true || _runs[r].Segment is not { } part || engine._cache.Contains(part))
            {
                _runs[r].Prefetch();
                return;
            }

            // This slot's columns last held run r - 2, whose slices the caller is done with.
            var columns = _columns[slot];
            if (columns is null || columns.Steps.Length < part.Rows)
            {
                if (columns is not null)
                {
                    engine._recycler.ReturnColumns(columns);
                }

                columns = _columns[slot] = engine._recycler.RentColumns(part.Rows) ?? new SeriesColumns(ChunkRecycler.ColumnCapacity(part.Rows));
            }

            var path = Path.Combine(engine._options.SegmentDirectory, part.File);
            _loads[slot] = Task.Run(() => engine._readers.ReadAsync(path, part.RowGroup, part.Float32, CancellationToken.None, columns));
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

        public async ValueTask<SeriesColumns> PointsAsync(int r) =>
            _loads[r & 1] is { } load ? await load : await _runs[r].PointsAsync();

        /// <summary>Waits for a decode still writing into its columns, then gives the columns back.</summary>
        public async ValueTask DisposeAsync()
        {
            await WaitAsync();
            foreach (var columns in _columns)
            {
                if (columns is not null)
                {
                    engine._recycler.ReturnColumns(columns);
                }
            }
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
