using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using MetricStore.Storage.Segments;

namespace MetricStore.Storage;

/// <summary>
/// Size-tiered compaction: when <see cref="StorageOptions.CompactAtSegments"/> (the fanout) adjacent
/// live point files have similar sizes (the largest at most <see cref="TierRatio"/> times the
/// smallest), merge the cheapest such run of files series by series (oldest file first, so the last
/// write of each step wins) into one float and one double file, which takes their place in the
/// file order. Only adjacent files are merged, so a file's position keeps meaning "written after
/// everything before it". Each point is rewritten about log_fanout(total / seal size) times, not
/// once per compaction as when every compaction merged everything. One series is in memory at a
/// time. The new manifest replaces the inputs with the outputs; only then do the series switch to
/// the new files and the inputs go. A crash before the manifest leaves the outputs unlisted
/// (removed at open), after it the inputs unlisted.
/// </summary>
public sealed partial class StorageEngine
{
    private Task? _compaction;
    private long _compactions;

    private long _compactionCopiedRows;

    /// <summary>Points compaction copied in row groups unchanged (not decoded and re-encoded) since open.</summary>
    public long CompactionCopiedRows => Interlocked.Read(ref _compactionCopiedRows);

    /// <summary>Compactions completed since open.</summary>
    public long Compactions => Interlocked.Read(ref _compactions);

    /// <summary>Completes when no compaction is running (tests and tools).</summary>
    public Task CompactionIdleAsync() => Volatile.Read(ref _compaction) ?? Task.CompletedTask;

    /// <summary>Files of one tier differ in rows by at most this factor.</summary>
    internal const int TierRatio = 4;

    /// <summary>
    /// Compaction gives way to a running seal at every row group it reads or writes: on two cores
    /// they compete for the same CPU, and a slow seal stops the writer (at twice the seal
    /// threshold) while a late compaction only leaves more files for a while.
    /// </summary>
    private Task YieldToSealAsync() =>
        Volatile.Read(ref _seal) is { IsCompleted: false } seal
            ? seal.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default) // whatever its outcome
            : Task.CompletedTask;

    private void StartCompactionIfDue()
    {
        if (_compaction is { IsCompleted: false } || PickCompaction(_liveSegments.Select(s => s.Rows).ToList(), _options.CompactAtSegments) is null)
        {
            return;
        }

        Volatile.Write(ref _compaction, Task.Run(CompactAsync));
    }

    /// <summary>
    /// The run of adjacent files to merge, or null when none is due:
    /// <list type="number">
    /// <item>a tier: at least <paramref name="fanout"/> (at most twice that) files whose row counts
    /// are within <see cref="TierRatio"/> of each other, the one with the fewest rows in all;</item>
    /// <item>else, once twice the fanout are live, a balanced run: the cheapest run of fanout to
    /// twice the fanout files whose largest holds at most half the run's rows. Small files a crash
    /// or an early seal left between two tiers form no tier with anything, and used to stay (up to
    /// four times the fanout of them). Since the output is at least twice any input, this rule
    /// rewrites a point at most log2(total / seal size) times;</item>
    /// <item>else, once four times the fanout are live, the newest fanout files (a safety valve, for
    /// files each larger than all before them).</item>
    /// </list>
    /// </summary>
    internal static (int Start, int Count)? PickCompaction(IReadOnlyList<long> rows, int fanout)
    {
        fanout = Math.Max(2, fanout);
        if (rows.Count < fanout)
        {
            return null;
        }

        return CheapestRun(rows, fanout, balanced: false)
            ?? (rows.Count >= 2 * fanout ? CheapestRun(rows, fanout, balanced: true) : null)
            ?? (rows.Count >= 4 * fanout ? (rows.Count - fanout, fanout) : null);
    }

    /// <summary>
    /// The run of fanout to twice the fanout adjacent files with the fewest rows in all that is a
    /// tier (largest at most <see cref="TierRatio"/> times the smallest) or, when
    /// <paramref name="balanced"/>, whose largest file holds at most half of its rows.
    /// </summary>
    private static (int Start, int Count)? CheapestRun(IReadOnlyList<long> rows, int fanout, bool balanced)
    {
        (int Start, int Count)? best = null;
        var bestRows = long.MaxValue;
        for (var start = 0; start + fanout <= rows.Count; start++)
        {
            long min = long.MaxValue, max = 0, total = 0;
            for (var end = start; end < rows.Count && end - start < 2 * fanout; end++)
            {
                var r = Math.Max(1, rows[end]);
                min = Math.Min(min, r);
                max = Math.Max(max, r);
                if (!balanced && max > TierRatio * min)
                {
                    break;
                }

                total += r;
                if (end - start + 1 >= fanout && total < bestRows && (!balanced || max <= total - max))
                {
                    best = (start, end - start + 1);
                    bestRows = total;
                }
            }
        }

        return best;
    }

    private async Task CompactAsync()
    {
        var stopwatch = Stopwatch.StartNew();
        long copied = 0; // counted once the compaction is committed: a failed one copied nothing that stays
        var live = _liveSegments.ToList();
        if (PickCompaction(live.Select(s => s.Rows).ToList(), _options.CompactAtSegments) is not { } pick)
        {
            return;
        }

        var inputs = live.GetRange(pick.Start, pick.Count);

        var number = Interlocked.Increment(ref _fileNumber);
        var parts = new SortedDictionary<int, List<(SegmentInfo File, SegmentSeries Part)>>();
        foreach (var file in inputs)
        {
            foreach (var part in file.Series)
            {
                if (!parts.TryGetValue(part.SeriesId, out var list))
                {
                    parts[part.SeriesId] = list = [];
                }

                list.Add((file, part));
            }
        }

        SegmentWriter? floats = null;
        SegmentWriter? doubles = null;
        var outputs = new List<SegmentInfo>();
        var free = new Stack<SeriesColumns>(); // row-group columns reused across the whole compaction
        try
        {
            var raw = new StrongBox<byte[]>(new byte[64 * 1024]); // copied row groups pass through this buffer (grown to the largest)
            foreach (var (seriesId, list) in parts)
            {
                SegmentWriter writer;
                if (list.All(p => p.File.ValueType == "float"))
                {
                    writer = floats ??= await SegmentWriter.CreateAsync(FilePath(number, "f"), float32: true, Parquet.CompressionMethod.Zstd, CancellationToken.None);
                }
                else
                {
                    writer = doubles ??= await SegmentWriter.CreateAsync(FilePath(number, "d"), float32: false, Parquet.CompressionMethod.Zstd, CancellationToken.None);
                }

                copied += await CompactSeriesAsync(seriesId, list, writer, free, raw);
            }

            if (floats is not null)
            {
                outputs.Add(await floats.CompleteAsync(CancellationToken.None));
            }

            if (doubles is not null)
            {
                outputs.Add(await doubles.CompleteAsync(CancellationToken.None));
            }

            var removed = new HashSet<string>(inputs.Select(i => i.File), StringComparer.Ordinal);
            await _manifestLock.WaitAsync();
            try
            {
                var current = _lastManifest!;
                var manifest = new Manifest
                {
                    Number = _manifestNumber + 1,
                    WalStart = current.WalStart,
                    Series = current.Series,
                    Writers = current.Writers,
                    // The outputs take the inputs' place; seals that finished meanwhile were appended after them.
                    Segments = [.. _liveSegments.TakeWhile(s => !removed.Contains(s.File)), .. outputs, .. _liveSegments.SkipWhile(s => !removed.Contains(s.File)).Where(s => !removed.Contains(s.File))],
                    SeriesTables = current.SeriesTables,
                };
                manifest.Commit(_options.ManifestDirectory);
                _manifestNumber = manifest.Number;
                _lastManifest = manifest;
                _liveSegments = manifest.Segments;
            }
            finally
            {
                _manifestLock.Release();
            }

            foreach (var (seriesId, refs) in SegmentRefs(outputs))
            {
                if (_series.TryGetValue(_lastManifest!.Series[seriesId], out var head))
                {
                    head.ReplaceSegments(removed, refs);
                }
            }

            // The inputs go once no read that may have listed them is active (a read takes its
            // snapshot inside a read scope); by then none of their readers is lent out.
            var paths = removed.Select(f => Path.Combine(_options.SegmentDirectory, f)).ToHashSet(StringComparer.Ordinal);
            await _recycler.RetireAsync(async () =>
            {
                try
                {
                    _cache.Forget(removed);
                    foreach (var path in paths)
                    {
                        File.Delete(path);
                    }

                    await _readers.ForgetAsync(paths);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Not listed in the manifest any more: the next open removes what is left.
                    _options.Log?.Invoke(StorageLogLevel.Warning, $"could not remove compacted segments ({e.Message}); the next open removes them");
                }
            });

            Interlocked.Increment(ref _compactions);
            Interlocked.Add(ref _compactionCopiedRows, copied);
            _options.Log?.Invoke(StorageLogLevel.Information,
                $"compacted {inputs.Count} segments (files {pick.Start}..{pick.Start + pick.Count - 1} of {live.Count}) ({inputs.Sum(i => i.Rows)} rows) into {outputs.Count} ({outputs.Sum(o => o.Rows)} rows, {copied} of them copied unchanged, {outputs.Sum(o => o.Bytes)} bytes) in {stopwatch.Elapsed.TotalMilliseconds:F0} ms");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The inputs are still live and listed: nothing is lost. Unlisted outputs go at the next open.
            _options.Log?.Invoke(StorageLogLevel.Error, $"compaction {number} failed and will be retried after the next seal: {e.Message}");
        }
        finally
        {
            if (floats is not null)
            {
                await floats.DisposeAsync();
            }

            if (doubles is not null)
            {
                await doubles.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Writes one series of a compaction's inputs into <paramref name="writer"/>, copying the row
    /// groups it can (see <see cref="StorageOptions.CompactionCopyRows"/>) and merging the rest;
    /// returns the points copied.
    /// </summary>
    private async Task<long> CompactSeriesAsync(int seriesId, List<(SegmentInfo File, SegmentSeries Part)> list, SegmentWriter writer, Stack<SeriesColumns> free, StrongBox<byte[]> raw)
    {
        // Streamed: at most one row group per input file and one output row group in memory,
        // however long the series. A series stays float32 when every input stored it so.
        async Task MergeAsync(IEnumerable<(SegmentInfo File, SegmentSeries Part)> merged)
        {
            var byFile = merged.GroupBy(p => p.File)
                .Select(g => new StreamingMerge.Input(
                    g.Select(p => p.Part).OrderBy(p => p.MinStep).ToList(),
                    async (part, spare) =>
                    {
                        await YieldToSealAsync();
                        return await _readers.ReadAsync(Path.Combine(_options.SegmentDirectory, g.Key.File), part.RowGroup, g.Key.ValueType == "float", CancellationToken.None, spare);
                    }))
                .ToList();
            await StreamingMerge.MergeAsync(byFile, SegmentWriter.MaxRowGroupRows, async rows =>
            {
                await YieldToSealAsync();
                await writer.AddAsync(seriesId, rows, CancellationToken.None);
            }, free);
        }

        // Copied where no merge is needed: a series whose row groups, in file order, each start
        // after the one before ends (a training log, sealed in step order, not re-logged) has no
        // step to resolve. Its large row groups are copied as they are; runs of smaller ones are
        // merged into larger ones, so each point is re-encoded only until its row group is large,
        // not at every tier.
        if (!InStepOrder(list))
        {
            await MergeAsync(list);
            return 0;
        }

        long copied = 0;
        async Task<bool> TryCopyAsync((SegmentInfo File, SegmentSeries Part) item)
        {
            if (item.Part.Rollup is not { } rollup)
            {
                return false;
            }

            // Null for a float32 row group going to a double file (the merge widens it) and for a
            // layout our writer does not write (an older file): both re-encoded.
            await YieldToSealAsync();
            if (await _readers.ReadRawAsync(Path.Combine(_options.SegmentDirectory, item.File.File), item.Part.RowGroup, writer.Float32, writer.Zstd, raw.Value!, CancellationToken.None) is not { } group)
            {
                return false;
            }

            raw.Value = group.Bytes;
            await writer.AddRawAsync(seriesId, item.Part.MinStep, item.Part.MaxStep, rollup, group, CancellationToken.None);
            copied += group.Rows;
            return true;
        }

        var pending = new List<(SegmentInfo File, SegmentSeries Part)>();
        async Task FlushAsync()
        {
            // A lone small row group gains nothing from a re-encode: copied too.
            if (pending.Count > 1 || (pending.Count == 1 && !await TryCopyAsync(pending[0])))
            {
                await MergeAsync(pending);
            }

            pending.Clear();
        }

        foreach (var item in list)
        {
            if (item.Part.Rows >= _options.CompactionCopyRows)
            {
                await FlushAsync();
                if (await TryCopyAsync(item))
                {
                    continue;
                }
            }

            pending.Add(item);
        }

        await FlushAsync();
        return copied;
    }

    /// <summary>
    /// Whether a series' row groups, in the order of the files being merged (each file's own in step
    /// order), each start after the one before ends: then no step is in two of them and nothing needs
    /// merging.
    /// </summary>
    internal static bool InStepOrder(IReadOnlyList<(SegmentInfo File, SegmentSeries Part)> parts)
    {
        for (var i = 1; i < parts.Count; i++)
        {
            if (parts[i].Part.MinStep <= parts[i - 1].Part.MaxStep)
            {
                return false;
            }
        }

        return true;
    }

    private string FilePath(long number, string suffix) =>
        Path.Combine(_options.SegmentDirectory, string.Create(CultureInfo.InvariantCulture, $"{number:D20}-{suffix}.parquet"));

    /// <summary>The highest number in a segment file name, so new files never reuse one.</summary>
    private static long HighestFileNumber(string directory)
    {
        long highest = 0;
        foreach (var path in Directory.EnumerateFiles(directory, "*.parquet"))
        {
            var name = Path.GetFileName(path);
            if (name.Length > 20 && long.TryParse(name.AsSpan(0, 20), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                highest = Math.Max(highest, n);
            }
        }

        return highest;
    }
}
