using MetricStore.Core;

namespace MetricStore.Storage.Head;

/// <summary>
/// The in-memory points of one series, in arrival order, in fixed-size chunks (no large copies as
/// it grows). Reads return the points sorted by step with the last write of each step winning.
/// While steps only ever increase (the common case) reads are a copy; after an out-of-order or
/// repeated step they sort.
/// </summary>
/// <remarks>The writer loop appends under the series lock; readers copy out under the same lock.</remarks>
internal sealed class SeriesHead
{
    internal const int ChunkSize = 1 << 16;
    private readonly List<SeriesColumns> _chunks = [];
    private readonly Lock _lock = new();
    private bool _strictlyIncreasing = true;
    private long _lastStep = long.MinValue;

    public SeriesHead(int id, SeriesKey key)
    {
        Id = id;
        Key = key;
    }

    public int Id { get; }

    public SeriesKey Key { get; }

    /// <summary>Points appended (a re-logged step counts again until it is read or sealed).</summary>
    public long AppendedCount { get; private set; }

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

                TrackOrder(chunk.Steps.AsSpan(at, take));
                chunk.Count += take;
                i += take;
            }

            AppendedCount += points.Count;
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

    /// <summary>The points with fromStep &lt;= step &lt;= toStep, sorted by step, last write wins.</summary>
    public SeriesColumns Read(long fromStep, long toStep)
    {
        lock (_lock)
        {
            var total = 0;
            foreach (var c in _chunks)
            {
                total += c.Count;
            }

            var result = new SeriesColumns(0);
            result.EnsureCapacity(total);
            var n = 0;
            foreach (var c in _chunks)
            {
                for (var i = 0; i < c.Count; i++)
                {
                    var step = c.Steps[i];
                    if (step >= fromStep && step <= toStep)
                    {
                        result.Steps[n] = step;
                        result.Values[n] = c.Values[i];
                        result.Timestamps[n] = c.Timestamps[i];
                        n++;
                    }
                }
            }

            result.Count = n;
            if (!_strictlyIncreasing)
            {
                SortLastWriteWins(result);
            }

            return result;
        }
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
            var last = order[i];
            while (j + 1 < n && keys[j + 1] == keys[i])
            {
                j++;
                last = Math.Max(last, order[j]);
            }

            steps[m] = keys[i];
            values[m] = columns.Values[last];
            timestamps[m] = columns.Timestamps[last];
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

    private void TrackOrder(ReadOnlySpan<long> steps)
    {
        if (!_strictlyIncreasing)
        {
            return;
        }

        var last = _lastStep;
        foreach (var s in steps)
        {
            if (s <= last)
            {
                _strictlyIncreasing = false;
                return;
            }

            last = s;
        }

        _lastStep = last;
    }
}
