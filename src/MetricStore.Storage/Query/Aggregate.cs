using System.Runtime.InteropServices;

namespace MetricStore.Storage.Query;

/// <summary>
/// The aggregate of a run of points sorted by step: count, first and last point, and over the
/// finite values only the sum, min and max (with the step where each first occurs); NaN and ±Inf
/// are counted apart. Two aggregates of adjacent step ranges combine exactly (the sum up to float64
/// rounding), which is what lets rollups answer for whole blocks.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct Aggregate
{
    public long Count;
    public long NanCount;
    public long InfCount;
    public double Sum;
    public double Min;
    public long MinStep;
    public double Max;
    public long MaxStep;
    public long FirstStep;
    public double First;
    public long LastStep;
    public double Last;
    public long LastTimestamp;

    /// <summary>Points with a finite value (the ones min, max and mean are over).</summary>
    public readonly long FiniteCount => Count - NanCount - InfCount;

    /// <summary>The mean of the finite values, NaN when there are none.</summary>
    public readonly double Mean => FiniteCount == 0 ? double.NaN : Sum / FiniteCount;

    public static Aggregate Empty => new() { Min = double.PositiveInfinity, Max = double.NegativeInfinity };

    /// <summary>Appends <paramref name="next"/>, whose steps all come after this aggregate's.</summary>
    public void Add(in Aggregate next)
    {
        if (next.Count == 0)
        {
            return;
        }

        if (Count == 0)
        {
            this = next;
            return;
        }

        Count += next.Count;
        NanCount += next.NanCount;
        InfCount += next.InfCount;
        Sum += next.Sum;
        if (next.Min < Min)
        {
            Min = next.Min;
            MinStep = next.MinStep;
        }

        if (next.Max > Max)
        {
            Max = next.Max;
            MaxStep = next.MaxStep;
        }

        LastStep = next.LastStep;
        Last = next.Last;
        LastTimestamp = next.LastTimestamp;
    }

    /// <summary>The aggregate of points [from, to) of sorted columns, by a plain scan.</summary>
    public static Aggregate Scan(long[] steps, double[] values, long[] timestamps, int from, int to)
    {
        var a = Empty;
        if (to <= from)
        {
            return a;
        }

        a.Count = to - from;
        a.FirstStep = steps[from];
        a.First = values[from];
        a.LastStep = steps[to - 1];
        a.Last = values[to - 1];
        a.LastTimestamp = timestamps[to - 1];
        double sum = 0;
        var min = double.PositiveInfinity;
        var max = double.NegativeInfinity;
        int minAt = -1, maxAt = -1;
        long nonFinite = 0;
        var v = values.AsSpan(from, to - from);
        for (var i = 0; i < v.Length; i++)
        {
            var x = v[i];
            if (!double.IsFinite(x))
            {
                nonFinite++;
                if (double.IsNaN(x))
                {
                    a.NanCount++;
                }

                continue;
            }

            sum += x;
            if (x < min)
            {
                min = x;
                minAt = i;
            }

            if (x > max)
            {
                max = x;
                maxAt = i;
            }
        }

        a.InfCount = nonFinite - a.NanCount;
        a.Sum = sum;
        a.Min = min;
        a.Max = max;
        a.MinStep = minAt < 0 ? 0 : steps[from + minAt];
        a.MaxStep = maxAt < 0 ? 0 : steps[from + maxAt];
        return a;
    }
}
