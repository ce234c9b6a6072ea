using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
    /// <summary>Size of one aggregate in an array (13 eight-byte fields).</summary>
    public const int Bytes = 13 * sizeof(long);

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

    /// <summary>
    /// The aggregate of points [from, to) of sorted columns. With 256-bit vectors and no NaN or ±Inf
    /// among them, the sum is taken in eight interleaved partial sums (so not in step order: it can
    /// differ from a sequential sum in the last bits, as any combination of blocks does), min and
    /// max lane-wise, and their steps are those of the first value equal to each, as in the plain
    /// scan (<see cref="ScanScalar"/>), which every other case takes.
    /// </summary>
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
        var v = values.AsSpan(from, to - from);
        if (!Vector256.IsHardwareAccelerated || v.Length < 2 * Vector256<double>.Count || !TryScanFinite(v, ref a))
        {
            ScanScalar(v, ref a);
        }

        if (a.Min != double.PositiveInfinity)
        {
            // The first occurrence of each, and its own sign of zero, as the scan's "x < min" keeps.
            var (minAt, maxAt) = FirstEqual(v, a.Min, a.Max);
            (a.Min, a.MinStep) = (v[minAt], steps[from + minAt]);
            (a.Max, a.MaxStep) = (v[maxAt], steps[from + maxAt]);
        }

        return a;
    }

    /// <summary>Sum, min, max and the non-finite counts of <paramref name="v"/>, one value after another.</summary>
    private static void ScanScalar(ReadOnlySpan<double> v, ref Aggregate a)
    {
        double sum = 0;
        var min = double.PositiveInfinity;
        var max = double.NegativeInfinity;
        long nonFinite = 0;
        long nan = 0;
        for (var i = 0; i < v.Length; i++)
        {
            var x = v[i];
            if (!double.IsFinite(x))
            {
                nonFinite++;
                if (double.IsNaN(x))
                {
                    nan++;
                }

                continue;
            }

            sum += x;
            min = x < min ? x : min;
            max = x > max ? x : max;
        }

        a.NanCount = nan;
        a.InfCount = nonFinite - nan;
        a.Sum = sum;
        a.Min = min;
        a.Max = max;
    }

    /// <summary>Sum, min and max of values that are all finite, eight at a time; false (nothing set) if one is not.</summary>
    private static bool TryScanFinite(ReadOnlySpan<double> v, ref Aggregate a)
    {
        ref var start = ref MemoryMarshal.GetReference(v);
        var width = Vector256<double>.Count;
        var sum0 = Vector256<double>.Zero;
        var sum1 = Vector256<double>.Zero;
        var min = Vector256.Create(double.PositiveInfinity);
        var max = Vector256.Create(double.NegativeInfinity);
        var finite = Vector256<double>.AllBitsSet;
        var i = 0;
        for (; i <= v.Length - (2 * width); i += 2 * width)
        {
            var x0 = Vector256.LoadUnsafe(ref start, (nuint)i);
            var x1 = Vector256.LoadUnsafe(ref start, (nuint)(i + width));
            finite &= Vector256.Equals(x0 - x0, Vector256<double>.Zero) & Vector256.Equals(x1 - x1, Vector256<double>.Zero); // NaN for NaN and ±Inf
            sum0 += x0;
            sum1 += x1;
            min = Vector256.Min(min, Vector256.Min(x0, x1));
            max = Vector256.Max(max, Vector256.Max(x0, x1));
        }

        if (finite.AsUInt64() != Vector256<ulong>.AllBitsSet) // as bits: an all-ones double is a NaN, unequal to itself
        {
            return false;
        }

        var sum = Vector256.Sum(sum0 + sum1);
        var lo = double.PositiveInfinity;
        var hi = double.NegativeInfinity;
        for (var lane = 0; lane < width; lane++)
        {
            lo = Math.Min(lo, min.GetElement(lane));
            hi = Math.Max(hi, max.GetElement(lane));
        }

        for (; i < v.Length; i++)
        {
            var x = v[i];
            if (!double.IsFinite(x))
            {
                return false;
            }

            sum += x;
            lo = Math.Min(lo, x);
            hi = Math.Max(hi, x);
        }

        a.Sum = sum;
        a.Min = lo;
        a.Max = hi;
        return true;
    }

    /// <summary>The first indexes whose values equal <paramref name="min"/> and <paramref name="max"/> (0.0 and -0.0 are equal, as in the scan's comparisons).</summary>
    private static (int MinAt, int MaxAt) FirstEqual(ReadOnlySpan<double> v, double min, double max)
    {
        int minAt = -1, maxAt = -1;
        for (var i = 0; i < v.Length && (minAt < 0 || maxAt < 0); i++)
        {
            minAt = minAt < 0 && v[i] == min ? i : minAt;
            maxAt = maxAt < 0 && v[i] == max ? i : maxAt;
        }

        return minAt >= 0 && maxAt >= 0 ? (minAt, maxAt) : throw new InvalidOperationException($"no value equals the min {min} or the max {max}");
    }
}
