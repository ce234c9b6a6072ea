namespace MetricStore.Storage;

/// <summary>Plain columns of points (steps, values, wall-clock ms), the unit the head stores and reads return.</summary>
public sealed class SeriesColumns
{
    public SeriesColumns(int capacity)
    {
        Steps = new long[capacity];
        Values = new double[capacity];
        Timestamps = new long[capacity];
    }

    private SeriesColumns(long[] steps, double[] values, long[] timestamps, int count)
    {
        Steps = steps;
        Values = values;
        Timestamps = timestamps;
        Count = count;
    }

    public long[] Steps { get; private set; }

    public double[] Values { get; private set; }

    public long[] Timestamps { get; private set; }

    public int Count { get; internal set; }

    /// <summary>The same arrays with the count as it is now: a read-only view for readers (no copy).</summary>
    internal static SeriesColumns View(SeriesColumns source) => new(source.Steps, source.Values, source.Timestamps, source.Count);

    internal void EnsureCapacity(int capacity)
    {
        if (Steps.Length >= capacity)
        {
            return;
        }

        var grown = Math.Max(capacity, Math.Max(16, Steps.Length * 2));
        var steps = Steps;
        var values = Values;
        var timestamps = Timestamps;
        Array.Resize(ref steps, grown);
        Array.Resize(ref values, grown);
        Array.Resize(ref timestamps, grown);
        Steps = steps;
        Values = values;
        Timestamps = timestamps;
    }
}
