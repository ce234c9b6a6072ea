using System.Diagnostics;

namespace MetricStore.Cli.Bench;

/// <summary>Latency sampling shared by the benchmarks.</summary>
internal static class BenchTiming
{
    /// <summary>
    /// Times <paramref name="iterations"/> calls (sorted, in ms) after calling for at least
    /// <paramref name="warmUp"/>: .NET runs new code unoptimized first and recompiles hot methods in
    /// the background, so calls in a server's first seconds measure the JIT's tier 0, not the server
    /// a client talks to.
    /// </summary>
    public static async Task<double[]> TimeAsync<T>(int iterations, TimeSpan warmUp, Func<Task<T>> call)
    {
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed < warmUp)
        {
            await call();
        }

        var times = new double[iterations];
        for (var i = 0; i < iterations; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await call();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        Array.Sort(times);
        return times;
    }

    /// <summary>The p-quantile (0..1) of sorted values (nearest rank).</summary>
    public static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
}
