using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MetricStore.Storage;

/// <summary>
/// Whole-column checks that every seal, append and compaction runs over every point, four lanes at
/// a time where the hardware has 256-bit vectors (a scalar tail, or the whole span without them).
/// Each gives exactly the answer of the plain loop beside it (tested against it). Public for the
/// server's request decoder, which widens float32 values with <see cref="Widen"/>.
/// </summary>
public static class ColumnKernels
{
    /// <summary>The smallest and largest value; (long.MaxValue, long.MinValue) for none.</summary>
    public static (long Min, long Max) MinMax(ReadOnlySpan<long> values)
    {
        var min = long.MaxValue;
        var max = long.MinValue;
        var i = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= 2 * Vector256<long>.Count)
        {
            ref var start = ref MemoryMarshal.GetReference(values);
            var vmin = Vector256.Create(long.MaxValue);
            var vmax = Vector256.Create(long.MinValue);
            for (; i <= values.Length - Vector256<long>.Count; i += Vector256<long>.Count)
            {
                var v = Vector256.LoadUnsafe(ref start, (nuint)i);
                vmin = Vector256.Min(vmin, v);
                vmax = Vector256.Max(vmax, v);
            }

            for (var lane = 0; lane < Vector256<long>.Count; lane++)
            {
                min = Math.Min(min, vmin.GetElement(lane));
                max = Math.Max(max, vmax.GetElement(lane));
            }
        }

        for (; i < values.Length; i++)
        {
            min = Math.Min(min, values[i]);
            max = Math.Max(max, values[i]);
        }

        return (min, max);
    }

    /// <summary>Every value is greater than the one before it (true for fewer than two).</summary>
    public static bool StrictlyIncreasing(ReadOnlySpan<long> values)
    {
        var i = 1;
        if (Vector256.IsHardwareAccelerated && values.Length > 2 * Vector256<long>.Count)
        {
            // Lanes compare values[i..i+4) with values[i-1..i+3).
            ref var start = ref MemoryMarshal.GetReference(values);
            var increasing = Vector256<long>.AllBitsSet;
            for (; i <= values.Length - Vector256<long>.Count; i += Vector256<long>.Count)
            {
                var previous = Vector256.LoadUnsafe(ref start, (nuint)(i - 1));
                var current = Vector256.LoadUnsafe(ref start, (nuint)i);
                increasing &= Vector256.GreaterThan(current, previous);
            }

            if (increasing != Vector256<long>.AllBitsSet)
            {
                return false;
            }
        }

        for (; i < values.Length; i++)
        {
            if (values[i] <= values[i - 1])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Every value is NaN or exactly a float32 (float32 storage loses nothing; NaN payloads are not kept).</summary>
    public static bool IsFloat32Exact(ReadOnlySpan<double> values)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= 2 * Vector256<double>.Count)
        {
            ref var start = ref MemoryMarshal.GetReference(values);
            var exact = Vector256<double>.AllBitsSet;
            for (; i <= values.Length - (2 * Vector256<double>.Count); i += 2 * Vector256<double>.Count)
            {
                var lower = Vector256.LoadUnsafe(ref start, (nuint)i);
                var upper = Vector256.LoadUnsafe(ref start, (nuint)(i + Vector256<double>.Count));
                var narrowed = Vector256.Narrow(lower, upper); // rounds to nearest, as the (float) cast does
                exact &= RoundTrips(lower, Vector256.WidenLower(narrowed)) & RoundTrips(upper, Vector256.WidenUpper(narrowed));
            }

            if (exact.AsUInt64() != Vector256<ulong>.AllBitsSet) // as bits: an all-ones double is a NaN, unequal to itself
            {
                return false;
            }
        }

        for (; i < values.Length; i++)
        {
            var v = values[i];
            if ((double)(float)v != v && !double.IsNaN(v))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Each value cast to float32 (rounded to nearest, as the <c>(float)</c> cast does), into <paramref name="into"/> (at least as long).</summary>
    public static void Narrow(ReadOnlySpan<double> values, Span<float> into)
    {
        if (into.Length < values.Length)
        {
            throw new ArgumentException($"{into.Length} floats for {values.Length} values", nameof(into));
        }

        var i = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= 2 * Vector256<double>.Count)
        {
            ref var start = ref MemoryMarshal.GetReference(values);
            ref var target = ref MemoryMarshal.GetReference(into);
            for (; i <= values.Length - (2 * Vector256<double>.Count); i += 2 * Vector256<double>.Count)
            {
                var lower = Vector256.LoadUnsafe(ref start, (nuint)i);
                var upper = Vector256.LoadUnsafe(ref start, (nuint)(i + Vector256<double>.Count));
                Vector256.Narrow(lower, upper).StoreUnsafe(ref target, (nuint)i);
            }
        }

        for (; i < values.Length; i++)
        {
            into[i] = (float)values[i];
        }
    }

    /// <summary>Each float32 value as a double (exact, as the implicit conversion), into <paramref name="into"/> (at least as long).</summary>
    public static void Widen(ReadOnlySpan<float> values, Span<double> into)
    {
        if (into.Length < values.Length)
        {
            throw new ArgumentException($"{into.Length} doubles for {values.Length} values", nameof(into));
        }

        var i = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= Vector256<float>.Count)
        {
            ref var start = ref MemoryMarshal.GetReference(values);
            ref var target = ref MemoryMarshal.GetReference(into);
            for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.LoadUnsafe(ref start, (nuint)i);
                Vector256.WidenLower(v).StoreUnsafe(ref target, (nuint)i);
                Vector256.WidenUpper(v).StoreUnsafe(ref target, (nuint)(i + Vector256<double>.Count));
            }
        }

        for (; i < values.Length; i++)
        {
            into[i] = values[i];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> RoundTrips(Vector256<double> value, Vector256<double> widened) =>
        Vector256.Equals(value, widened) | ~Vector256.Equals(value, value); // x != x only for NaN
}
