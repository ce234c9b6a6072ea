namespace MetricStore.Cli.Bench;

/// <summary>
/// The information content of the synthetic loss curve's values: the lower bound, in bytes per
/// point, for any lossless encoding of them, even one that knew the generator's decay curve and
/// noise level exactly (Shannon's source coding theorem). Each value is an independent Gaussian
/// sample rounded to float32 (or float64); its probability is the Gaussian density at the value
/// times the width of the interval that rounds to it, and its cost is -log2 of that. The noise is
/// many ulps wide, so the density is flat across one rounding interval and this is exact to far
/// more digits than are reported.
/// </summary>
internal static class CurveEntropy
{
    /// <summary>Mean bytes per point of information in <paramref name="values"/> (float32 curve, index i at position i).</summary>
    public static double BytesPerPoint(float[] values) => Mean(values.Length, i => (values[i], RoundingWidth(values[i])));

    /// <summary>The same for the full-precision float64 curve.</summary>
    public static double BytesPerPoint(double[] values) => Mean(values.Length, i => (values[i], RoundingWidth(values[i])));

    private static double Mean(int n, Func<int, (double Value, double Width)> point)
    {
        var bits = 0.0;
        var sqrt2Pi = Math.Sqrt(2 * Math.PI);
        for (var i = 0; i < n; i++)
        {
            var (value, width) = point(i);
            var z = (value - IngestBench.NoisyLossMean(i)) / IngestBench.NoiseSigma;
            var density = Math.Exp(-0.5 * z * z) / (IngestBench.NoiseSigma * sqrt2Pi);
            bits -= Math.Log2(density * width);
        }

        return bits / n / 8;
    }

    // Everything between the midpoints to the neighbouring representable values rounds to v.
    private static double RoundingWidth(float v) => ((double)MathF.BitIncrement(v) - MathF.BitDecrement(v)) / 2;

    private static double RoundingWidth(double v) => (Math.BitIncrement(v) - Math.BitDecrement(v)) / 2;
}
