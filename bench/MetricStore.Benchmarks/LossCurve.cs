using MetricStore.Core;

namespace MetricStore.Benchmarks;

/// <summary>A float32-origin noisy loss curve as engine write batches, shared by the query benchmarks.</summary>
internal static class LossCurve
{
    /// <summary>Steps 0..points-1 of <paramref name="key"/> in batches of <paramref name="perRequest"/> points, seqs from <paramref name="nextSeq"/>.</summary>
    public static IEnumerable<WriteBatch> Batches(SeriesKey key, int points, int perRequest, Random random, Func<ulong> nextSeq)
    {
        for (var first = 0; first < points; first += perRequest)
        {
            var steps = new long[perRequest];
            var values = new double[perRequest];
            for (var i = 0; i < perRequest; i++)
            {
                steps[i] = first + i;
                values[i] = (float)((2.5 * Math.Exp(-steps[i] / 2e6)) + (0.02 * random.NextDouble()));
            }

            yield return new WriteBatch
            {
                WriterId = "bench",
                Seq = nextSeq(),
                Series = [new SeriesPoints { Key = key, Count = perRequest, Steps = steps, Values = values, Timestamps = [1_700_000_000_000], SharedTimestamp = true, Float32Origin = true }],
            };
        }
    }
}
