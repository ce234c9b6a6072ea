using MetricStore.Storage.Query;

namespace MetricStore.Storage.Tests;

/// <summary>
/// The vector kernels every append, seal and compaction runs (<see cref="ColumnKernels"/>,
/// <see cref="Aggregate.Scan"/>) give the plain loop's answer at every length around the vector
/// width and with the odd value at every position: a lane or tail they skip, or a comparison they
/// get wrong, shows as a mismatch here.
/// </summary>
public sealed class ColumnKernelsTests
{
    private static readonly int[] s_lengths = [.. Enumerable.Range(0, 41), 63, 64, 65, 127, 128, 129, 1000];

    [Fact]
    public void MinMax_equals_a_plain_loop()
    {
        var random = new Random(1);
        foreach (var n in s_lengths)
        {
            var values = Enumerable.Range(0, n).Select(_ => random.NextInt64(-1000, 1000)).ToArray();
            Assert.Equal(NaiveMinMax(values), ColumnKernels.MinMax(values));

            // The extreme values at every position, so every lane and the tail are looked at.
            for (var at = 0; at < n; at++)
            {
                var copy = (long[])values.Clone();
                copy[at] = long.MinValue;
                copy[n - 1 - at] = long.MaxValue;
                Assert.Equal(NaiveMinMax(copy), ColumnKernels.MinMax(copy));
            }
        }
    }

    [Fact]
    public void StrictlyIncreasing_equals_a_plain_loop()
    {
        foreach (var n in s_lengths)
        {
            var steps = Enumerable.Range(0, n).Select(i => (3L * i) - 50).ToArray();
            Assert.True(ColumnKernels.StrictlyIncreasing(steps), $"n={n}");

            // One step out of order, or equal to the one before it, at every position.
            for (var at = 1; at < n; at++)
            {
                foreach (var value in new[] { steps[at - 1], steps[at - 1] - 1, long.MinValue })
                {
                    var copy = (long[])steps.Clone();
                    copy[at] = value;
                    Assert.Equal(NaiveIncreasing(copy), ColumnKernels.StrictlyIncreasing(copy));
                    Assert.False(ColumnKernels.StrictlyIncreasing(copy), $"n={n}, at={at}, value={value}");
                }
            }
        }
    }

    [Fact]
    public void IsFloat32Exact_equals_the_round_trip_test()
    {
        var random = new Random(2);
        double[] odd = [0.1, 1e300, -1e300, 1e-300, (double)float.MaxValue * 2, 1 + Math.Pow(2, -30), double.Epsilon];
        double[] exact = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, -0.0, float.MaxValue, float.Epsilon, -float.Epsilon, 16_777_217f];
        foreach (var n in s_lengths)
        {
            var values = Enumerable.Range(0, n).Select(_ => (double)(float)((random.NextDouble() * 20) - 10)).ToArray();
            Assert.True(ColumnKernels.IsFloat32Exact(values), $"n={n}");
            for (var at = 0; at < n; at++)
            {
                foreach (var value in odd.Concat(exact))
                {
                    var copy = (double[])values.Clone();
                    copy[at] = value;
                    Assert.True(NaiveFloat32Exact(copy) == ColumnKernels.IsFloat32Exact(copy), $"n={n}, at={at}, value={value}");
                }
            }
        }
    }

    [Fact]
    public void Narrow_equals_the_float_cast_bit_for_bit()
    {
        double[] odd = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, -0.0, 0.1, 1e300, -1e300, 1e-300, double.Epsilon, 1 + Math.Pow(2, -24), 1 + (3 * Math.Pow(2, -25)), float.MaxValue];
        AssertConversion<double, float>(
            random => (random.NextDouble() * 20) - 10, // not float32: every lane rounds
            odd,
            ColumnKernels.Narrow,
            42f,
            v => BitConverter.SingleToInt32Bits((float)v),
            f => BitConverter.SingleToInt32Bits(f));
        Assert.Throws<ArgumentException>(() => ColumnKernels.Narrow(new double[3], new float[2]));
    }

    [Fact]
    public void Widen_equals_the_conversion_bit_for_bit()
    {
        float[] odd = [float.NaN, BitConverter.Int32BitsToSingle(unchecked((int)0xFFC00001)), float.PositiveInfinity, float.NegativeInfinity, -0f, float.Epsilon, -float.Epsilon, float.MaxValue, float.MinValue];
        AssertConversion<float, double>(
            random => (float)((random.NextDouble() * 20) - 10),
            odd,
            ColumnKernels.Widen,
            42.0,
            v => BitConverter.DoubleToInt64Bits(v),
            d => BitConverter.DoubleToInt64Bits(d));
        Assert.Throws<ArgumentException>(() => ColumnKernels.Widen(new float[3], new double[2]));
    }

    private delegate void Conversion<TFrom, TTo>(ReadOnlySpan<TFrom> values, Span<TTo> into);

    /// <summary>
    /// The kernel gives, as bits, what the plain conversion gives: at every length, with each odd
    /// value at every position, and writes nothing past the values.
    /// </summary>
    private static void AssertConversion<TFrom, TTo>(Func<Random, TFrom> next, TFrom[] odd, Conversion<TFrom, TTo> kernel, TTo sentinel, Func<TFrom, long> expectedBits, Func<TTo, long> bits)
        where TTo : struct
    {
        var random = new Random(4);
        foreach (var n in s_lengths)
        {
            var values = Enumerable.Range(0, n).Select(_ => next(random)).ToArray();
            for (var at = 0; at <= n; at++)
            {
                foreach (var value in at < n ? odd : [default!])
                {
                    var copy = (TFrom[])values.Clone();
                    if (at < n)
                    {
                        copy[at] = value;
                    }

                    var into = new TTo[n + 1];
                    into[n] = sentinel;
                    kernel(copy, into);
                    Assert.Equal(copy.Select(expectedBits), into.Take(n).Select(bits));
                    Assert.Equal(bits(sentinel), bits(into[n])); // nothing written past the values
                }
            }
        }
    }

    [Fact]
    public void Scan_equals_a_plain_scan_with_nan_inf_and_signed_zeros()
    {
        var random = new Random(3);
        double[] specials = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, 0.0, -0.0];
        foreach (var n in s_lengths)
        {
            for (var round = 0; round < 20; round++)
            {
                // Small integers sum exactly in any order, so the sum must match to the bit too.
                // Rounds 16-19 make a zero the min (then the max) with both signs present: the
                // first one found keeps its sign.
                double[] pool = round switch
                {
                    >= 18 => [0.0, -0.0, -1.0],
                    >= 16 => [0.0, -0.0, 1.0],
                    _ => [.. Enumerable.Range(-5, 11).Select(i => (double)i)],
                };
                var values = Enumerable.Range(0, n).Select(_ => pool[random.Next(pool.Length)]).ToArray();
                for (var k = round % 4; k > 0 && n > 0; k--)
                {
                    values[random.Next(n)] = specials[random.Next(specials.Length)];
                }

                var steps = Enumerable.Range(0, n).Select(i => 10L + (2L * i)).ToArray();
                var timestamps = Enumerable.Range(0, n).Select(i => 1000L + i).ToArray();
                var from = n == 0 ? 0 : random.Next(Math.Min(n, 3));
                var actual = Aggregate.Scan(steps, values, timestamps, from, n);
                var expected = NaiveScan(steps, values, timestamps, from, n);
                var what = $"n={n}, round={round}, values=[{string.Join(',', values.Skip(from))}]";
                Assert.True(Same(expected, actual), $"{what}: expected {Show(expected)}, got {Show(actual)}");
            }
        }
    }

    [Fact]
    public void Scan_sums_real_values_to_within_rounding()
    {
        var random = new Random(4);
        foreach (var n in s_lengths.Where(n => n > 0))
        {
            var values = Enumerable.Range(0, n).Select(_ => (random.NextDouble() * 1e6) - 3e5).ToArray();
            var steps = Enumerable.Range(0, n).Select(i => (long)i).ToArray();
            var actual = Aggregate.Scan(steps, values, steps, 0, n);
            var expected = NaiveScan(steps, values, steps, 0, n);
            Assert.True(Math.Abs(expected.Sum - actual.Sum) <= 1e-9 * values.Sum(Math.Abs), $"n={n}: sum {actual.Sum}, expected {expected.Sum}");
            Assert.Equal((expected.Min, expected.MinStep, expected.Max, expected.MaxStep), (actual.Min, actual.MinStep, actual.Max, actual.MaxStep));
        }
    }

    private static (long, long) NaiveMinMax(long[] values) => values.Length == 0 ? (long.MaxValue, long.MinValue) : (values.Min(), values.Max());

    private static bool NaiveIncreasing(long[] values)
    {
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] <= values[i - 1])
            {
                return false;
            }
        }

        return true;
    }

    private static bool NaiveFloat32Exact(double[] values) => values.All(v => double.IsNaN(v) || (double)(float)v == v);

    /// <summary>The scan as first written: one value after another, the first min and max kept.</summary>
    private static Aggregate NaiveScan(long[] steps, double[] values, long[] timestamps, int from, int to)
    {
        var a = Aggregate.Empty;
        if (to <= from)
        {
            return a;
        }

        a.Count = to - from;
        (a.FirstStep, a.First, a.LastStep, a.Last, a.LastTimestamp) = (steps[from], values[from], steps[to - 1], values[to - 1], timestamps[to - 1]);
        for (var i = from; i < to; i++)
        {
            var x = values[i];
            if (double.IsNaN(x))
            {
                a.NanCount++;
            }
            else if (double.IsInfinity(x))
            {
                a.InfCount++;
            }
            else
            {
                a.Sum += x;
                if (x < a.Min)
                {
                    (a.Min, a.MinStep) = (x, steps[i]);
                }

                if (x > a.Max)
                {
                    (a.Max, a.MaxStep) = (x, steps[i]);
                }
            }
        }

        return a;
    }

    /// <summary>Field by field, doubles by their bits (so -0.0 is not 0.0).</summary>
    private static bool Same(Aggregate x, Aggregate y) =>
        (x.Count, x.NanCount, x.InfCount, x.MinStep, x.MaxStep, x.FirstStep, x.LastStep, x.LastTimestamp)
            == (y.Count, y.NanCount, y.InfCount, y.MinStep, y.MaxStep, y.FirstStep, y.LastStep, y.LastTimestamp)
        && new[] { x.Sum, x.Min, x.Max, x.First, x.Last }.Select(BitConverter.DoubleToInt64Bits)
            .SequenceEqual(new[] { y.Sum, y.Min, y.Max, y.First, y.Last }.Select(BitConverter.DoubleToInt64Bits));

    private static string Show(Aggregate a) =>
        $"count {a.Count} nan {a.NanCount} inf {a.InfCount} sum {a.Sum} min {a.Min:R}@{a.MinStep} max {a.Max:R}@{a.MaxStep}";
}
