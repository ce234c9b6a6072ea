using System.Diagnostics;
using System.Globalization;
using MetricStore.Core;
using MetricStore.Storage.Head;
using MetricStore.Storage.Segments;
using MetricStore.Storage.Wal;

namespace MetricStore.Storage;

/// <summary>
/// Sealing: the head becomes Parquet segments, the manifest records them, and the WAL behind them
/// goes. The writer thread cuts (rolls the WAL and freezes every series between two groups, so the
/// cut is consistent with the writer seqs); a background task writes the files; only after the new
/// manifest is durable does memory drop the frozen points and the WAL lose its old segments. A
/// crash at any moment leaves the old manifest with the WAL that covers it, or the new one.
/// </summary>
public sealed partial class StorageEngine
{
    private Task? _seal;
    private long _unsealedPoints;
    private long _sealingPoints; // the points of the running seal: still in memory until it completes
    private long _unsealedBytes; // memory of the chunks written since the cut (HeadChunk.MemoryBytes)
    private long _sealingBytes; // memory of the running seal's chunks
    private long _oldestUnsealed = Stopwatch.GetTimestamp();
    private long _manifestNumber;
    private long _fileNumber;
    private Manifest? _lastManifest;
    private readonly SemaphoreSlim _manifestLock = new(1, 1);
    private List<SegmentInfo> _liveSegments = [];
    private List<string> _liveSeriesTables = [];
    private long _seals;

    /// <summary>Seals completed since open.</summary>
    public long Seals => Interlocked.Read(ref _seals);

    /// <summary>Bytes of the live Parquet segments.</summary>
    public long SegmentBytes => _liveSegments.Sum(s => s.Bytes);

    /// <summary>Rows of the live Parquet segments.</summary>
    public long SegmentRows => _liveSegments.Sum(s => s.Rows);

    private TaskCompletionSource? _sealWaiter;

    /// <summary>
    /// Asks the writer thread to seal everything written so far; completes when that seal is
    /// durable (at once when there is nothing to seal).
    /// </summary>
    public async Task SealNowAsync(CancellationToken cancellationToken = default)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var pending = Interlocked.CompareExchange(ref _sealWaiter, waiter, null) ?? waiter;
        _ring.TryEnqueue(null!); // wakes the writer; a null entry is skipped
        await pending.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Writer thread: start a seal when the head is large or old enough; wait for one when memory is at its bound.</summary>
    private void MaybeSeal()
    {
        var running = _seal is { IsCompleted: false };
        if (running && (_unsealedPoints >= 2 * _options.SealThresholdPoints || _unsealedBytes >= 2 * _options.SealThresholdBytes))
        {
            // Memory bound: stop taking writes until the running seal releases its points.
            var waited = Stopwatch.StartNew();
            _seal!.Wait();
            running = false;
            _options.Log?.Invoke(StorageLogLevel.Warning,
                $"writes waited {waited.Elapsed.TotalMilliseconds:F0} ms for a seal: {_unsealedPoints} points ({_unsealedBytes >> 20} MiB) were unsealed, twice the seal threshold (ingest is outrunning sealing)");
        }

        // A request waiting while a seal runs is served by the next seal, after this one.
        var requested = Volatile.Read(ref _sealWaiter) is not null;
        if (running)
        {
            return;
        }

        if (_unsealedPoints == 0)
        {
            Interlocked.Exchange(ref _sealWaiter, null)?.TrySetResult();
            return;
        }

        var old = Stopwatch.GetElapsedTime(_oldestUnsealed) >= _options.SealMaxAge;
        if (!requested && !old && _unsealedPoints < _options.SealThresholdPoints && _unsealedBytes < _options.SealThresholdBytes)
        {
            return;
        }

        // The cut: everything so far is in WAL segments below walStart and in the frozen chunks.
        _wal.Flush();
        var walStart = _wal.Roll();
        var frozen = new List<(SeriesHead Head, List<HeadChunk> Chunks)>();
        var catalog = new Dictionary<int, string>();
        foreach (var head in _seriesById)
        {
            catalog[head.Id] = head.Key.Canonical;
            if (head.Freeze() is { } chunks)
            {
                frozen.Add((head, chunks));
            }
        }

        var writers = new Dictionary<string, ulong>(_durableSeqs, StringComparer.Ordinal);
        Interlocked.Exchange(ref _sealingPoints, _unsealedPoints);
        Interlocked.Exchange(ref _sealingBytes, _unsealedBytes);
        _unsealedPoints = 0;
        Interlocked.Exchange(ref _unsealedBytes, 0);
        _oldestUnsealed = Stopwatch.GetTimestamp();
        var seal = Task.Run(() => SealAsync(frozen, catalog, writers, walStart));
        Volatile.Write(ref _seal, seal);
        if (Interlocked.Exchange(ref _sealWaiter, null) is { } waiter)
        {
            seal.ContinueWith(_ => waiter.TrySetResult(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task SealAsync(List<(SeriesHead Head, List<HeadChunk> Chunks)> frozenChunks, Dictionary<int, string> catalog, Dictionary<string, ulong> writers, long walStart)
    {
        try
        {
            await SealFrozenAsync(frozenChunks, catalog, writers, walStart);
        }
        finally
        {
            // Sealed (its chunks are kept or gone) or put back into the unsealed points.
            Interlocked.Exchange(ref _sealingPoints, 0);
            Interlocked.Exchange(ref _sealingBytes, 0);
        }
    }

    private async Task SealFrozenAsync(List<(SeriesHead Head, List<HeadChunk> Chunks)> frozenChunks, Dictionary<int, string> catalog, Dictionary<string, ulong> writers, long walStart)
    {
        var stopwatch = Stopwatch.StartNew();

        // Sorting and last-write-wins happen here, off the writer thread. A series whose chunks are
        // already in step order (training logs steps in order) is written from the chunks as they
        // are; only one with steps out of order or re-logged is merged into a sorted copy first.
        var frozen = frozenChunks.Select(f => new FrozenSeries(f.Head, f.Chunks)).ToList();
        var number = Interlocked.Increment(ref _fileNumber);
        var written = new List<SegmentInfo>();
        try
        {
            var exact = frozen.Where(f => f.Float32Exact).ToList();
            var wide = frozen.Except(exact).ToList();
            foreach (var (group, float32, suffix) in new[] { (exact, true, "f"), (wide, false, "d") })
            {
                if (group.Count == 0)
                {
                    continue;
                }

                var path = Path.Combine(_options.SegmentDirectory, string.Create(CultureInfo.InvariantCulture, $"{number:D20}-{suffix}.parquet"));
                await using var writer = await SegmentWriter.CreateAsync(path, float32, Parquet.CompressionMethod.Zstd, CancellationToken.None);
                foreach (var series in group.OrderBy(g => g.Head.Key.Canonical, StringComparer.Ordinal))
                {
                    await writer.AddInOrderAsync(series.Head.Id, series.Parts, series.Blocks, CancellationToken.None);
                }

                written.Add(await writer.CompleteAsync(CancellationToken.None));
            }

            var seriesTable = string.Create(CultureInfo.InvariantCulture, $"{number:D20}-s.parquet");
            await SegmentFile.WriteSeriesTableAsync(
                Path.Combine(_options.SegmentDirectory, seriesTable),
                frozen.Select(f => (f.Head.Id, f.Head.Key)).OrderBy(s => s.Id).ToList(),
                CancellationToken.None);
            Manifest manifest;
            await _manifestLock.WaitAsync();
            try
            {
                // A compaction may have replaced segments since this seal began: keep its result.
                manifest = new Manifest
                {
                    Number = _manifestNumber + 1,
                    WalStart = walStart,
                    Series = catalog,
                    Writers = writers,
                    Segments = [.. _liveSegments, .. written],
                    SeriesTables = [.. _liveSeriesTables, seriesTable],
                };
                manifest.Commit(_options.ManifestDirectory);
                _manifestNumber = manifest.Number;
                _lastManifest = manifest;
                _liveSegments = manifest.Segments;
                _liveSeriesTables = manifest.SeriesTables;
            }
            finally
            {
                _manifestLock.Release();
            }

            // Durable: now memory and the WAL behind the cut can go.
            // All row groups of a series at once, so no reader sees the frozen points gone and only part of them sealed.
            var heads = frozen.ToDictionary(f => f.Head.Id, f => f.Head);
            var sealedChunks = new List<HeadChunk>();
            foreach (var (seriesId, refs) in SegmentRefs(written))
            {
                sealedChunks.AddRange(heads[seriesId].CompleteSeal(refs));
            }

            // Out of every series now: reusable once the readers that might still see them are done.
            _recycler.Retire(sealedChunks);

            foreach (var n in WalRecovery.ListSegments(_options.WalDirectory))
            {
                if (n < walStart)
                {
                    File.Delete(Path.Combine(_options.WalDirectory, WalFormat.SegmentFileName(n)));
                }
            }

            DirectorySync.Sync(_options.WalDirectory);
            Interlocked.Increment(ref _seals);
            StartCompactionIfDue();
            _options.Log?.Invoke(StorageLogLevel.Information,
                $"sealed {written.Sum(w => w.Rows)} points of {frozen.Count} series into {written.Count} segments ({written.Sum(w => w.Bytes)} bytes) in {stopwatch.Elapsed.TotalMilliseconds:F0} ms; manifest {manifest.Number}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing was lost: the WAL still covers the frozen points. Put them back and try again later.
            foreach (var series in frozen)
            {
                series.Head.Unfreeze();
            }

            Interlocked.Add(ref _unsealedPoints, frozen.Sum(f => f.Points));
            Interlocked.Add(ref _unsealedBytes, frozenChunks.Sum(f => f.Chunks.Sum(c => c.MemoryBytes)));
            _options.Log?.Invoke(StorageLogLevel.Error, $"seal {number} failed and will be retried: {e.Message}");
        }
    }

    /// <summary>Each series' row groups in the files, in file order then row-group order (arrival order).</summary>
    private static Dictionary<int, List<SegmentRef>> SegmentRefs(IEnumerable<SegmentInfo> files)
    {
        var refs = new Dictionary<int, List<SegmentRef>>();
        foreach (var file in files)
        {
            var float32 = file.ValueType == "float";
            foreach (var part in file.Series)
            {
                if (!refs.TryGetValue(part.SeriesId, out var list))
                {
                    refs[part.SeriesId] = list = [];
                }

                list.Add(new SegmentRef(file.File, part.RowGroup, float32, part.MinStep, part.MaxStep, checked((int)part.Rows), part.Rollup
                    ?? throw new InvalidOperationException($"segment {file.File} row group {part.RowGroup} has no rollup loaded")));
            }
        }

        return refs;
    }

    /// <summary>At open: drop what a crash left half done (files the manifest does not list, WAL it covers).</summary>
    private static void RemoveLeftovers(StorageOptions options, Manifest? manifest)
    {
        var live = new HashSet<string>((manifest?.Segments.Select(s => s.File) ?? []).Concat(manifest?.SeriesTables ?? []), StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFiles(options.SegmentDirectory))
        {
            if (!live.Contains(Path.GetFileName(path)))
            {
                options.Log?.Invoke(StorageLogLevel.Information, $"removing {Path.GetFileName(path)}: not in the manifest (left by an interrupted seal)");
                File.Delete(path);
            }
        }

        if (manifest is null)
        {
            return;
        }

        foreach (var n in WalRecovery.ListSegments(options.WalDirectory))
        {
            if (n < manifest.WalStart)
            {
                File.Delete(Path.Combine(options.WalDirectory, WalFormat.SegmentFileName(n)));
            }
        }
    }

    /// <summary>
    /// One series' frozen chunks, as the seal writes them: in order as they are, or merged (sorted,
    /// last write wins) when a chunk is unsorted or overlaps the one before.
    /// </summary>
    private sealed class FrozenSeries
    {
        public FrozenSeries(SeriesHead head, List<HeadChunk> chunks)
        {
            Head = head;
            var filled = chunks.FindAll(c => c.Count > 0);
            Parts = filled.ConvertAll(c => c.Columns);
            var inOrder = true;
            var last = long.MinValue;
            foreach (var chunk in filled)
            {
                inOrder &= chunk.Sorted && chunk.MinStep > last;
                last = chunk.MaxStep;
            }

            if (!inOrder)
            {
                Parts = [SeriesHead.Merge(Parts, 0, long.MinValue, long.MaxValue)];
            }
            else
            {
                Blocks = filled.ConvertAll(c => c.CoarseBlocks()); // one per part
            }

            Points = Parts.Sum(p => (long)p.Count);
            Float32Exact = filled.TrueForAll(c => c.Float32Exact); // a merged copy holds some of the chunks' values
        }

        public SeriesHead Head { get; }

        /// <summary>In step order with unique steps: the chunks' columns, or the one merged copy.</summary>
        public List<SeriesColumns> Parts { get; }

        /// <summary>The chunks' aggregates of whole rollup blocks, one per part (null for a merged copy).</summary>
        public List<SegmentWriter.PartBlocks>? Blocks { get; }

        public long Points { get; }

        public bool Float32Exact { get; }
    }
}
