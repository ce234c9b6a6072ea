namespace MetricStore.Storage.Segments;

/// <summary>
/// Merges one series from several files in step order, the newest file winning a step that several
/// hold (last write wins), without holding the series in memory: it keeps at most one row group per
/// input file and one output buffer, and loads an input's next row group only when the merge
/// reaches that row group's first step (known from the manifest). When the files cover disjoint
/// step ranges, as training runs write them, one input row group is loaded at a time. Columns a
/// cursor is done with go to a free list that later loads (and the next series) read into.
/// </summary>
/// <remarks>
/// Within one file a series' row groups are sorted, disjoint and have unique steps (seals and
/// compactions write them so), which is what lets each file be read as one cursor.
/// </remarks>
internal static class StreamingMerge
{
    /// <summary>
    /// One input: a file's row groups of the series, in step order, and how to load one (into the
    /// given free columns when they are large enough, so buffers are reused rather than allocated).
    /// </summary>
    internal sealed record Input(IReadOnlyList<SegmentSeries> Parts, Func<SegmentSeries, SeriesColumns?, Task<SeriesColumns>> Load);

    /// <summary>
    /// Emits the merged series in buffers of at most <paramref name="bufferRows"/> points (the same
    /// buffer each time: <paramref name="emit"/> must be done with it when its task completes).
    /// </summary>
    /// <param name="inputs">Oldest first: a later input's point replaces an earlier one's at the same step.</param>
    /// <param name="bufferRows">Points per emitted buffer.</param>
    /// <param name="emit">Receives each full buffer and the last, partly filled one.</param>
    /// <param name="free">Columns no longer in use, taken for loads and the output and given back
    /// when done: one pool for the whole compaction keeps its large arrays few and reused.</param>
    /// <returns>The number of points emitted.</returns>
    public static async Task<long> MergeAsync(IReadOnlyList<Input> inputs, int bufferRows, Func<SeriesColumns, Task> emit, Stack<SeriesColumns>? free = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bufferRows, 1);
        free ??= new Stack<SeriesColumns>();
        var cursors = inputs.Select(i => new Cursor(i, free)).ToArray();
        var output = free.TryPop(out var reused) && reused.Steps.Length >= bufferRows ? reused : new SeriesColumns(bufferRows);
        output.Count = 0;
        long emitted = 0;
        while (true)
        {
            // The smallest next step; on a tie the newest input (highest index) supplies the point.
            var best = -1;
            var bestStep = long.MaxValue;
            for (var c = 0; c < cursors.Length; c++)
            {
                if (cursors[c].Peek() is { } step && (best < 0 || step <= bestStep))
                {
                    best = c;
                    bestStep = step;
                }
            }

            if (best < 0)
            {
                break;
            }

            // The next step any other input holds: everything of the best input below it is copied as is.
            var next = long.MaxValue;
            for (var c = 0; c < cursors.Length; c++)
            {
                if (c != best && cursors[c].Peek() is { } step && step < next)
                {
                    next = step;
                }
            }

            var winner = cursors[best];
            var part = await winner.LoadAsync();
            if (next == bestStep)
            {
                // Several inputs hold this step: take the newest one's point, skip it in the others.
                Append(output, part, winner.Position, 1);
                winner.Advance(1);
                for (var c = 0; c < best; c++)
                {
                    if (cursors[c].Peek() == bestStep)
                    {
                        await cursors[c].LoadAsync();
                        cursors[c].Advance(1);
                    }
                }
            }
            else
            {
                var end = next == long.MaxValue ? part.Count : LowerBound(part.Steps, winner.Position, part.Count, next);
                var take = Math.Min(end - winner.Position, bufferRows - output.Count);
                Append(output, part, winner.Position, take);
                winner.Advance(take);
            }

            if (output.Count == bufferRows)
            {
                await emit(output);
                emitted += output.Count;
                output.Count = 0;
            }
        }

        if (output.Count > 0)
        {
            await emit(output);
            emitted += output.Count;
        }

        output.Count = 0;
        free.Push(output);
        return emitted;
    }

    private static void Append(SeriesColumns output, SeriesColumns source, int offset, int count)
    {
        Array.Copy(source.Steps, offset, output.Steps, output.Count, count);
        Array.Copy(source.Values, offset, output.Values, output.Count, count);
        Array.Copy(source.Timestamps, offset, output.Timestamps, output.Count, count);
        output.Count += count;
    }

    /// <summary>The first index in [from, to) whose step is at least <paramref name="step"/>.</summary>
    private static int LowerBound(long[] steps, int from, int to, long step)
    {
        var lo = from;
        var hi = to;
        while (lo < hi)
        {
            var mid = lo + ((hi - lo) >> 1);
            if (steps[mid] < step)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    /// <summary>One input's position: the loaded row group (if any) and the index within it.</summary>
    private sealed class Cursor(Input input, Stack<SeriesColumns> free)
    {
        private int _part;
        private SeriesColumns? _loaded;

        public int Position { get; private set; }

        /// <summary>The next step, from the loaded row group or, before loading, the next row group's first step.</summary>
        public long? Peek() =>
            _loaded is not null ? _loaded.Steps[Position]
            : _part < input.Parts.Count ? input.Parts[_part].MinStep
            : null;

        public async Task<SeriesColumns> LoadAsync()
        {
            if (_loaded is null)
            {
                var part = input.Parts[_part];
                free.TryPop(out var spare);
                var loaded = await input.Load(part, spare);
                if (spare is not null && !ReferenceEquals(loaded, spare))
                {
                    free.Push(spare); // too small for this row group: keep it for another
                }

                if (loaded.Count != part.Rows || loaded.Count == 0 || loaded.Steps[0] != part.MinStep)
                {
                    throw new IOException($"row group {part.RowGroup} of series {part.SeriesId} has {loaded.Count} rows from step {(loaded.Count > 0 ? loaded.Steps[0] : 0)}, but the manifest lists {part.Rows} rows from step {part.MinStep}");
                }

                _loaded = loaded;
                Position = 0;
            }

            return _loaded;
        }

        public void Advance(int count)
        {
            Position += count;
            if (Position == _loaded!.Count)
            {
                // Done with this row group: its columns are free for the next load anywhere.
                _loaded.Count = 0;
                free.Push(_loaded);
                _loaded = null;
                Position = 0;
                _part++;
            }
        }
    }
}
