using MetricStore.Core;
using MetricStore.Storage.Segments;

namespace MetricStore.Storage.Head;

/// <summary>
/// One series: its sealed segments (oldest first), the chunks frozen for the seal in progress, and
/// the chunks still being appended, all in arrival order. Reads merge the three and return points
/// sorted by step with the last write of each step winning, so a step re-logged after it was sealed
/// still replaces the sealed value.
/// </summary>
/// <remarks>
/// The writer thread appends under the series lock; the sealer swaps frozen chunks for a segment
/// reference under the same lock; readers copy references out under it and read files outside it.
/// </remarks>
internal sealed class SeriesHead
{
    internal const int ChunkSize = 1 << 16;
    private readonly Lock _lock = new();
    private readonly List<SegmentRef> _segments = [];
    private List<SeriesColumns> _chunks = [];
    private List<SeriesColumns> _frozen = [];

    public SeriesHead(int id, SeriesKey key)
    {
        Id = id;
        Key = key;
    }

    public int Id { get; }

    public SeriesKey Key { get; }

    public void Append(SeriesPoints points)
    {
        lock (_lock)
        {
            for (var i = 0; i < points.Count;)
            {
                var chunk = WritableChunk();
                var take = Math.Min(points.Count - i, chunk.Steps.Length - chunk.Count);
                var at = chunk.Count;
                Array.Copy(points.Steps, i, chunk.Steps, at, take);
                Array.Copy(points.Values, i, chunk.Values, at, take);
                if (points.SharedTimestamp)
                {
                    chunk.Timestamps.AsSpan(at, take).Fill(points.Timestamps[0]);
                }
                else
                {
                    Array.Copy(points.Timestamps, i, chunk.Timestamps, at, take);
                }

                chunk.Count += take;
                i += take;
            }
        }
    }

    /// <summary>
    /// Appends points straight from a WAL record (replay), without an intermediate copy. Steps are
    /// an arithmetic run (first, stride) when <paramref name="rawSteps"/> is empty; values are
    /// float32 or float64 little-endian; one shared timestamp when <paramref name="rawTimestamps"/>
    /// is empty.
    /// </summary>
    public void AppendEncoded(int n, ReadOnlySpan<byte> rawSteps, long firstStep, long stride, ReadOnlySpan<byte> rawValues, bool float32, ReadOnlySpan<byte> rawTimestamps, long sharedTimestamp)
    {
        var steps = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(rawSteps);
        var doubles = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(rawValues);
        var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(rawValues);
        var timestamps = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(rawTimestamps);
        lock (_lock)
        {
            for (var i = 0; i < n;)
            {
                var chunk = WritableChunk();
                var take = Math.Min(n - i, chunk.Steps.Length - chunk.Count);
                var at = chunk.Count;
                var stepTarget = chunk.Steps.AsSpan(at, take);
                if (steps.IsEmpty)
                {
                    var step = firstStep + (i * stride);
                    for (var k = 0; k < take; k++, step += stride)
                    {
                        stepTarget[k] = step;
                    }
                }
                else
                {
                    steps.Slice(i, take).CopyTo(stepTarget);
                }

                if (float32)
                {
                    var valueTarget = chunk.Values.AsSpan(at, take);
                    var source = floats.Slice(i, take);
                    for (var k = 0; k < take; k++)
                    {
                        valueTarget[k] = source[k];
                    }
                }
                else
                {
                    doubles.Slice(i, take).CopyTo(chunk.Values.AsSpan(at, take));
                }

                if (timestamps.IsEmpty)
                {
                    chunk.Timestamps.AsSpan(at, take).Fill(sharedTimestamp);
                }
                else
                {
                    timestamps.Slice(i, take).CopyTo(chunk.Timestamps.AsSpan(at, take));
                }

                chunk.Count += take;
                i += take;
            }
        }
    }

    public void Append(SeriesColumns columns)
    {
        Append(new SeriesPoints
        {
            Key = Key,
            Count = columns.Count,
            Steps = columns.Steps,
            Values = columns.Values,
            Timestamps = columns.Timestamps,
        });
    }

    public void AddSegment(SegmentRef segment)
    {
        lock (_lock)
        {
            _segments.Add(segment);
        }
    }

    /// <summary>
    /// Moves the appended chunks aside for sealing (a list swap: the writer thread calls this) and
    /// returns them, or null when empty. Frozen chunks never change again.
    /// </summary>
    public List<SeriesColumns>? Freeze()
    {
        lock (_lock)
        {
            if (_chunks.Count == 0)
            {
                return null;
            }

            _frozen = _chunks;
            _chunks = [];
            return _frozen;
        }
    }

    /// <summary>
    /// Compaction replaced the files in <paramref name="removed"/> by <paramref name="replacement"/>
    /// (null when none of this series' points remain, which cannot happen for a merged series). The
    /// merged data is older than any segment sealed after the compaction began, so it takes the
    /// place of the first removed reference.
    /// </summary>
    public void ReplaceSegments(IReadOnlySet<string> removed, SegmentRef? replacement)
    {
        lock (_lock)
        {
            var at = _segments.FindIndex(r => removed.Contains(r.File));
            if (at < 0)
            {
                return;
            }

            _segments.RemoveAll(r => removed.Contains(r.File));
            if (replacement is not null)
            {
                _segments.Insert(Math.Min(at, _segments.Count), replacement);
            }
        }
    }

    /// <summary>The frozen points are now in <paramref name="segment"/>: drop them from memory.</summary>
    public void CompleteSeal(SegmentRef segment)
    {
        lock (_lock)
        {
            _segments.Add(segment);
            _frozen = [];
        }
    }

    /// <summary>The seal failed: the frozen points go back in front of the newer ones.</summary>
    public void Unfreeze()
    {
        lock (_lock)
        {
            _frozen.AddRange(_chunks);
            _chunks = _frozen;
            _frozen = [];
        }
    }

    /// <summary>The points with fromStep &lt;= step &lt;= toStep, sorted by step, last write wins.</summary>
    public async ValueTask<SeriesColumns> ReadAsync(string segmentDirectory, long fromStep, long toStep, CancellationToken cancellationToken)
    {
        // A compaction may delete a file between taking the references and opening it: take them again.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await ReadOnceAsync(segmentDirectory, fromStep, toStep, cancellationToken);
            }
            catch (FileNotFoundException) when (attempt < 5)
            {
            }
        }
    }

    private async ValueTask<SeriesColumns> ReadOnceAsync(string segmentDirectory, long fromStep, long toStep, CancellationToken cancellationToken)
    {
        SegmentRef[] segments;
        List<SeriesColumns> memory;
        lock (_lock)
        {
            segments = [.. _segments];

            // Views, not copies: chunks only grow past their count (and a growing chunk gets new
            // arrays), so the points below the count seen here never change. Merge copies once.
            memory = new List<SeriesColumns>(_frozen.Count + _chunks.Count);
            foreach (var chunk in _frozen)
            {
                memory.Add(SeriesColumns.View(chunk));
            }

            foreach (var chunk in _chunks)
            {
                memory.Add(SeriesColumns.View(chunk));
            }
        }

        var parts = new List<SeriesColumns>(segments.Length + memory.Count);
        foreach (var segment in segments)
        {
            if (segment.MaxStep < fromStep || segment.MinStep > toStep)
            {
                continue;
            }

            parts.Add(await SegmentFile.ReadAsync(Path.Combine(segmentDirectory, segment.File), segment.RowGroup, segment.Float32, cancellationToken));
        }

        parts.AddRange(memory);
        return Merge(parts, 0, fromStep, toStep);
    }

    /// <summary>Points of the parts (in arrival order) within the range, sorted by step, last write wins.</summary>
    internal static SeriesColumns Merge(List<SeriesColumns> parts, int start, long fromStep, long toStep)
    {
        var total = 0;
        for (var p = start; p < parts.Count; p++)
        {
            total += parts[p].Count;
        }

        var result = new SeriesColumns(0);
        result.EnsureCapacity(Math.Max(total, 1));
        var n = 0;
        var increasing = true;
        var last = long.MinValue;
        for (var p = start; p < parts.Count; p++)
        {
            var c = parts[p];
            for (var i = 0; i < c.Count; i++)
            {
                var step = c.Steps[i];
                if (step < fromStep || step > toStep)
                {
                    continue;
                }

                increasing &= n == 0 || step > last;
                last = step;
                result.Steps[n] = step;
                result.Values[n] = c.Values[i];
                result.Timestamps[n] = c.Timestamps[i];
                n++;
            }
        }

        result.Count = n;
        if (!increasing)
        {
            SortLastWriteWins(result);
        }

        return result;
    }

    /// <summary>Sorts by step; of equal steps keeps the one that arrived last.</summary>
    internal static void SortLastWriteWins(SeriesColumns columns)
    {
        var n = columns.Count;
        var keys = new long[n];
        var order = new int[n];
        Array.Copy(columns.Steps, keys, n);
        for (var i = 0; i < n; i++)
        {
            order[i] = i;
        }

        // Unstable sort by step; arrival order is recovered from the index among equal steps.
        Array.Sort(keys, order);
        var steps = new long[n];
        var values = new double[n];
        var timestamps = new long[n];
        var m = 0;
        for (var i = 0; i < n;)
        {
            var j = i;
            var lastIndex = order[i];
            while (j + 1 < n && keys[j + 1] == keys[i])
            {
                j++;
                lastIndex = Math.Max(lastIndex, order[j]);
            }

            steps[m] = keys[i];
            values[m] = columns.Values[lastIndex];
            timestamps[m] = columns.Timestamps[lastIndex];
            m++;
            i = j + 1;
        }

        Array.Copy(steps, columns.Steps, m);
        Array.Copy(values, columns.Values, m);
        Array.Copy(timestamps, columns.Timestamps, m);
        columns.Count = m;
    }

    /// <summary>
    /// The chunk to append to. A series starts small (most series of a run are short) and grows by
    /// doubling up to <see cref="ChunkSize"/>; after that it adds whole chunks and never copies.
    /// </summary>
    private SeriesColumns WritableChunk()
    {
        if (_chunks.Count == 0)
        {
            _chunks.Add(new SeriesColumns(256));
        }

        var last = _chunks[^1];
        if (last.Count < last.Steps.Length)
        {
            return last;
        }

        if (last.Steps.Length < ChunkSize)
        {
            last.EnsureCapacity(Math.Min(ChunkSize, last.Steps.Length * 2));
            return last;
        }

        var chunk = new SeriesColumns(ChunkSize);
        _chunks.Add(chunk);
        return chunk;
    }
}

/// <summary>Where a series' sealed points are: a file, its row group, the value type and the step range.</summary>
internal sealed record SegmentRef(string File, int RowGroup, bool Float32, long MinStep, long MaxStep);
