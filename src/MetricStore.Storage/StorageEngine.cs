using System.Collections.Concurrent;
using System.Diagnostics;
using MetricStore.Core;
using MetricStore.Storage.Head;
using MetricStore.Storage.Ingest;
using MetricStore.Storage.Query;
using MetricStore.Storage.Segments;
using MetricStore.Storage.Wal;

namespace MetricStore.Storage;

/// <summary>
/// The metrics engine: writes go through a lock-free bounded ring to one writer thread that
/// appends them to the WAL (group commit: one write and one fsync per group), then applies them to
/// the in-memory head and completes each write. Reads see only durable points.
/// </summary>
/// <remarks>
/// Exactly once: the writer loop keeps each writer's highest durable seq (rebuilt from the WAL at
/// open), answers a seq at or below it as a duplicate without writing, and refuses a seq that
/// skips ahead. Because one thread decides, no lock guards that state.
/// </remarks>
public sealed partial class StorageEngine : IAsyncDisposable
{
    private readonly StorageOptions _options;
    private readonly BoundedMpscQueue<PendingWrite> _ring;
    private readonly ConcurrentDictionary<string, SeriesHead> _series = new(StringComparer.Ordinal);
    private readonly List<SeriesHead> _seriesById = [];
    private readonly ConcurrentDictionary<string, ulong> _durableSeqs = new(StringComparer.Ordinal);
    private readonly WalSegmentWriter _wal;
    private readonly FileStream _lock;
    private readonly Thread _writer;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<PendingWrite> _group = [];
    private readonly Dictionary<string, ulong> _groupSeqs = new(StringComparer.Ordinal); // seqs decided within the current group
    private byte[] _record = new byte[1 << 16];
    private int[] _ids = new int[64];
    private long _pointsWritten;
    private static readonly TimeSpan s_slowFsync = TimeSpan.FromMilliseconds(50);
    private long _slowFsyncs;
    private long _lastSlowFsyncLog;
    private volatile Exception? _fault;
    private int _disposed;
    private readonly System.Diagnostics.Metrics.Meter _meter;

    private StorageEngine(StorageOptions options, long nextSegment, FileStream directoryLock, ChunkRecycler recycler)
    {
        _options = options;
        _recycler = recycler;
        _lock = directoryLock;
        _ring = new BoundedMpscQueue<PendingWrite>(options.RingCapacity);
        _cache = new PartCache(QueryCacheCapacity, _readers, recycler);
        _scanMemory = new ScanMemory(options.ScanMemoryBytes);
        _wal = new WalSegmentWriter(options.WalDirectory, nextSegment, options.WalSegmentBytes, options.WalCompressAboveBytes);
        _writer = new Thread(WriterLoop) { IsBackground = true, Name = "metricstore-wal-writer" };
        _meter = CreateMeter();
    }

    /// <summary>What recovery replayed at open.</summary>
    public RecoveryStats Recovery { get; private set; } = new(0, 0, 0, TimeSpan.Zero, null);

    /// <summary>
    /// Opens the engine: replays the WAL (truncating a torn tail, refusing corruption of acknowledged
    /// data) and starts the writer thread.
    /// </summary>
    public static StorageEngine Open(StorageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(options.ScanMemoryBytes);
        Directory.CreateDirectory(options.WalDirectory);
        var directoryLock = LockDirectory(options.DataDirectory);
        try
        {
            return Recover(options, directoryLock);
        }
        catch
        {
            directoryLock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One engine per data directory: an exclusive lock on LOCK (flock on Unix), released by the
    /// OS whenever the process ends, even by SIGKILL.
    /// </summary>
    private static FileStream LockDirectory(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, "LOCK");
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"the data directory '{Path.GetFullPath(dataDirectory)}' is in use by another MetricStore process ({path} is locked)", e);
        }
    }

    private static StorageEngine Recover(StorageOptions options, FileStream directoryLock)
    {
        var stopwatch = Stopwatch.StartNew();
        Directory.CreateDirectory(options.SegmentDirectory);
        var manifest = Manifest.LoadLatest(options.ManifestDirectory);
        var walStart = manifest?.WalStart ?? 0;
        RemoveLeftovers(options, manifest);

        // Replay into temporary state, then build the engine over it.
        // Up to two seals' worth of 64k-point chunks are kept for reuse (the head itself can hold
        // twice the seal threshold unsealed plus the chunks being sealed).
        // Up to the query cache's floor of evicted row-group columns is kept for the next misses.
        var recycler = new ChunkRecycler(
            (int)Math.Clamp(2 * options.SealThresholdPoints / SeriesHead.ChunkSize, 16, 1024),
            Math.Min(options.QueryCacheFloorBytes, options.QueryCacheBytes));
        var series = new Dictionary<int, SeriesHead>();
        var seqs = new Dictionary<string, ulong>(StringComparer.Ordinal);
        if (manifest is not null)
        {
            foreach (var (id, canonical) in manifest.Series)
            {
                series[id] = new SeriesHead(id, SeriesKey.FromCanonical(canonical), recycler);
            }

            foreach (var (writer, seq) in manifest.Writers)
            {
                seqs[writer] = seq;
            }

            foreach (var segment in manifest.Segments)
            {
                var rollups = SegmentFile.ReadRollupsAsync(Path.Combine(options.SegmentDirectory, segment.File), CancellationToken.None).GetAwaiter().GetResult();
                foreach (var part in segment.Series)
                {
                    part.Rollup = rollups.TryGetValue(part.RowGroup, out var rollup) && rollup.Count == part.Rows
                        ? rollup
                        : throw new IOException($"segment {segment.File} has no rollup for row group {part.RowGroup} with {part.Rows} rows");
                }
            }

            foreach (var (id, refs) in SegmentRefs(manifest.Segments))
            {
                foreach (var segmentRef in refs)
                {
                    series[id].AddSegment(segmentRef);
                }
            }
        }

        long points = 0;
        var report = WalRecovery.Replay(options.WalDirectory, walStart, (body, _) =>
        {
            switch (body[0])
            {
                case WalRecords.SeriesDefType:
                    var (id, canonical) = WalRecords.DecodeSeriesDef(body);
                    series.TryAdd(id, new SeriesHead(id, SeriesKey.FromCanonical(canonical), recycler));
                    break;
                case WalRecords.WriteType:
                    // A seq the writer already has is in a sealed segment (or a duplicate): never applied twice.
                    if (WalRecords.ReplayWrite(body, seqs, id => series[id], out var applied))
                    {
                        points += applied;
                    }

                    break;
                default:
                    throw new WalCorruptionException($"WAL record type {body[0]} is unknown to this build");
            }
        });

        var engine = new StorageEngine(options, Math.Max(report.LastSegmentNumber, walStart) + 1, directoryLock, recycler);
        foreach (var head in series.Values.OrderBy(h => h.Id))
        {
            engine._series[head.Key.Canonical] = head;
            engine.IndexByRun(head);
            engine._changedSeries.TryAdd(head.Id, 0); // summaries are offered once after open
            while (engine._seriesById.Count <= head.Id)
            {
                engine._seriesById.Add(null!);
            }

            engine._seriesById[head.Id] = head;
        }

        foreach (var (writer, seq) in seqs)
        {
            engine._durableSeqs[writer] = seq;
        }

        engine._manifestNumber = manifest?.Number ?? 0;
        engine._lastManifest = manifest;
        engine._fileNumber = Math.Max(engine._manifestNumber, HighestFileNumber(options.SegmentDirectory));
        engine._liveSegments = manifest?.Segments ?? [];
        engine._liveSeriesTables = manifest?.SeriesTables ?? [];
        engine._unsealedPoints = points;
        engine._unsealedBytes = series.Values.Sum(h => h.UnsealedBytes);
        engine.Recovery = new RecoveryStats(report.Segments, report.Frames, points, stopwatch.Elapsed, report.TruncatedTail);
        if (report.TruncatedTail is { } tail)
        {
            options.Log?.Invoke(StorageLogLevel.Warning, "WAL recovery: " + tail);
        }

        options.Log?.Invoke(StorageLogLevel.Information,
            $"recovery: manifest {manifest?.Number ?? 0} with {engine._liveSegments.Count} segments; WAL replayed {report.Frames} records, {points} points from {report.Segments} segments in {stopwatch.Elapsed.TotalMilliseconds:F0} ms");
        engine._writer.Start();
        return engine;
    }

    /// <summary>Points made durable since open.</summary>
    public long PointsWritten => Interlocked.Read(ref _pointsWritten);

    /// <summary>WAL bytes written since open (after compression) and before compression.</summary>
    public (long Stored, long Raw) WalBytes => (_wal.BytesWritten, _wal.RawBytes);

    /// <summary>The highest durable seq of a writer; 0 when it never wrote.</summary>
    public ulong DurableSeq(string writerId) => _durableSeqs.TryGetValue(writerId, out var seq) ? seq : 0;

    /// <summary>
    /// Queues a write and completes when it is durable (or known to be a duplicate or a gap). Waits
    /// while the ring is full: that wait is the backpressure senders feel.
    /// </summary>
    public async ValueTask<WriteResult> WriteAsync(WriteBatch batch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ThrowIfFaulted();
        var pending = new PendingWrite(batch);
        await _ring.EnqueueAsync(pending, cancellationToken);
        return await pending.Completion.Task.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _meter.Dispose();
        await _stop.CancelAsync();
        await Task.Run(() => _writer.Join());
        if (_seal is { } seal)
        {
            await seal;
        }

        if (_compaction is { } compaction)
        {
            await compaction;
        }

        await _recycler.CloseAsync(); // the files compactions replaced while reads were active
        await _readers.DisposeAsync();
        _wal.Dispose();
        _stop.Dispose();
        await _lock.DisposeAsync();
    }

    private void ThrowIfFaulted()
    {
        if (_fault is { } fault)
        {
            throw new StorageStoppedException(fault);
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
    }

    private void WriterLoop()
    {
        var flushEvery = _options.AsyncFlushInterval;
        var lastFlush = Stopwatch.GetTimestamp();
        var lastWrite = lastFlush;
        var dirty = false;
        try
        {
            while (true)
            {
                if (!_ring.TryDequeue(out var first) || first is null)
                {
                    if (_stop.IsCancellationRequested)
                    {
                        break;
                    }

                    MaybeSeal();
                    if (Stopwatch.GetElapsedTime(lastWrite) >= _options.KeptChunksIdleTime && _recycler.ReleaseKept() is > 0 and var released)
                    {
                        _options.Log?.Invoke(StorageLogLevel.Information, $"no writes for {_options.KeptChunksIdleTime.TotalSeconds:F0} s: let go of {released * HeadChunk.BytesPerPoint >> 20} MiB of head chunks kept for reuse; the query cache may use it");
                    }

                    if (dirty && Stopwatch.GetElapsedTime(lastFlush) >= flushEvery)
                    {
                        _wal.Flush();
                        dirty = false;
                        lastFlush = Stopwatch.GetTimestamp();
                    }

                    _ring.WaitToRead(dirty ? (int)Math.Max(1, flushEvery.TotalMilliseconds) : 100);
                    continue;
                }

                _group.Add(first);
                while (_group.Count < _options.MaxGroupRequests && _ring.TryDequeue(out var next))
                {
                    if (next is not null)
                    {
                        _group.Add(next);
                    }
                }

                CommitGroup();
                lastWrite = Stopwatch.GetTimestamp();
                MaybeSeal();
                if (_options.Durability == Durability.Sync)
                {
                    lastFlush = Stopwatch.GetTimestamp();
                }
                else
                {
                    dirty = true;
                    if (Stopwatch.GetElapsedTime(lastFlush) >= flushEvery)
                    {
                        _wal.Flush();
                        dirty = false;
                        lastFlush = Stopwatch.GetTimestamp();
                    }
                }
            }

            if (dirty)
            {
                _wal.Flush();
            }
        }
        catch (Exception e)
        {
            // A failed write or fsync leaves the WAL's state unknown: stop taking writes rather than ack blindly.
            _fault = e;
            _options.Log?.Invoke(StorageLogLevel.Error, $"WAL writer stopped: {e}");
            foreach (var pending in _group)
            {
                pending.Completion.TrySetException(new StorageStoppedException(e));
            }

            while (_ring.TryDequeue(out var left))
            {
                left.Completion.TrySetException(new StorageStoppedException(e));
            }
        }
    }

    /// <summary>One group commit: decide each write, append the durable ones, one write + fsync, apply, complete.</summary>
    private void CommitGroup()
    {
        var groupPoints = 0L;
        var groupBytes = 0L;
        var pendingSeqs = _groupSeqs;
        pendingSeqs.Clear();
        foreach (var pending in _group)
        {
            var batch = pending.Batch;
            if (!pendingSeqs.TryGetValue(batch.WriterId, out var durable))
            {
                durable = DurableSeq(batch.WriterId);
            }

            if (batch.Seq <= durable)
            {
                pending.Outcome = WriteOutcome.Duplicate;
                continue;
            }

            if (batch.Seq != durable + 1)
            {
                pending.Outcome = WriteOutcome.Gap;
                continue;
            }

            pending.Outcome = WriteOutcome.Durable;
            pendingSeqs[batch.WriterId] = batch.Seq;
            if (_ids.Length < batch.Series.Count)
            {
                _ids = new int[Math.Max(batch.Series.Count, _ids.Length * 2)];
            }

            for (var i = 0; i < batch.Series.Count; i++)
            {
                _ids[i] = SeriesIdFor(batch.Series[i].Key);
            }

            var length = WalRecords.EncodeWrite(ref _record, batch, _ids.AsSpan(0, batch.Series.Count));
            _wal.Append(_record.AsSpan(0, length));
            pending.SeriesIds = _ids.AsSpan(0, batch.Series.Count).ToArray();
            groupPoints += batch.PointCount;
        }

        _wal.WriteGroup();
        if (_options.Durability == Durability.Sync)
        {
            var started = Stopwatch.GetTimestamp();
            _wal.Flush();
            NoteFsync(Stopwatch.GetElapsedTime(started));
        }

        foreach (var pending in _group)
        {
            var batch = pending.Batch;
            if (pending.Outcome == WriteOutcome.Durable)
            {
                for (var i = 0; i < batch.Series.Count; i++)
                {
                    groupBytes += _seriesById[pending.SeriesIds![i]].Append(batch.Series[i]);
                    _changedSeries.TryAdd(pending.SeriesIds![i], 0);
                }

                _durableSeqs[batch.WriterId] = batch.Seq;
            }
        }

        Interlocked.Add(ref _pointsWritten, groupPoints);
        _unsealedPoints += groupPoints;
        Interlocked.Add(ref _unsealedBytes, groupBytes);
        if (_cache.Bytes > QueryCacheFloor)
        {
            _cache.Trim(); // the head grew: the query cache gives way (MemoryBudgetBytes)
        }
        foreach (var pending in _group)
        {
            var result = new WriteResult(pending.Outcome, DurableSeq(pending.Batch.WriterId));
            pending.Batch.Release?.Invoke(pending.Batch);
            pending.Completion.TrySetResult(result);
        }

        _group.Clear();
    }

    /// <summary>A slow WAL fsync delays every ack of its group: say so (at most once a second), since it is the disk, not the engine.</summary>
    private void NoteFsync(TimeSpan took)
    {
        if (took < s_slowFsync)
        {
            return;
        }

        _slowFsyncs++;
        if (Stopwatch.GetElapsedTime(_lastSlowFsyncLog) >= TimeSpan.FromSeconds(1))
        {
            _lastSlowFsyncLog = Stopwatch.GetTimestamp();
            _options.Log?.Invoke(StorageLogLevel.Warning, $"WAL fsync took {took.TotalMilliseconds:F0} ms ({_slowFsyncs} fsyncs over {s_slowFsync.TotalMilliseconds:F0} ms since open); acks wait for it");
        }
    }

    /// <summary>The dense id of a series, defining it in the WAL (same group, before its first write) when new.</summary>
    private int SeriesIdFor(SeriesKey key)
    {
        if (_series.TryGetValue(key.Canonical, out var head))
        {
            return head.Id;
        }

        var id = _seriesById.Count;
        head = new SeriesHead(id, key, _recycler);
        var length = WalRecords.EncodeSeriesDef(ref _record, id, key.Canonical);
        _wal.Append(_record.AsSpan(0, length));
        _seriesById.Add(head);
        _series[key.Canonical] = head;
        IndexByRun(head);
        return id;
    }

    private sealed class PendingWrite(WriteBatch batch)
    {
        public WriteBatch Batch { get; } = batch;

        public TaskCompletionSource<WriteResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public WriteOutcome Outcome { get; set; }

        public int[]? SeriesIds { get; set; }
    }
}

/// <summary>What the WAL replay at open did.</summary>
public sealed record RecoveryStats(int Segments, long Records, long Points, TimeSpan Elapsed, string? TruncatedTail);
