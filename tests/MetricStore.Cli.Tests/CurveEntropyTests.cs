using MetricStore.Cli.Bench;

namespace MetricStore.Cli.Tests;

/// <summary>The information bound that 'bench ingest' and 'bench bytes' report next to the bytes per point they measure.</summary>
public sealed class CurveEntropyTests
{
    /// <summary>
    /// The per-sample sum must agree with the closed form for a Gaussian rounded to a grid much
    /// finer than its width: differential entropy log2(sigma * sqrt(2 pi e)) minus log2 of the grid
    /// step (the float's ulp at the mean), averaged along the curve.
    /// </summary>
    [Theory]
    [InlineData(1 << 20)]
    [InlineData(4_000_000)]
    public void The_float32_bound_matches_the_closed_form_for_a_finely_rounded_gaussian(int length)
    {
        var measured = CurveEntropy.BytesPerPoint(IngestBench.NoisyLossCurve(length, seed: 42));

        var differential = Math.Log2(IngestBench.NoiseSigma * Math.Sqrt(2 * Math.PI * Math.E));
        var expected = 0.0;
        for (var i = 0; i < length; i++)
        {
            var mean = (float)IngestBench.NoisyLossMean(i);
            expected += differential - Math.Log2((double)MathF.BitIncrement(mean) - mean);
        }

        expected /= length * 8.0;
        Assert.InRange(measured, expected - 0.03, expected + 0.03);
        Assert.InRange(measured, 2.5, 3.2); // above the 2.5 target: the reason it is out of reach
    }

    [Fact]
    public void Double_precision_noise_carries_29_more_bits_a_point_than_float32()
    {
        var f32 = CurveEntropy.BytesPerPoint(IngestBench.NoisyLossCurve(1 << 18, seed: 7));
        var f64 = CurveEntropy.BytesPerPoint(IngestBench.NoisyLossCurve64(1 << 18, seed: 7));
        Assert.InRange(f64 - f32, (29 / 8.0) - 0.05, (29 / 8.0) + 0.05); // 52 - 23 mantissa bits
    }
}
