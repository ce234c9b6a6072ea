using System.Globalization;
using DuckDB.NET.Data;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>Invariant 6: segments are plain Parquet that DuckDB reads without MetricStore.</summary>
public sealed class DuckDbInteropTests
{
    [Fact]
    public async Task DuckDB_reads_the_segments_with_the_same_counts_and_sums_per_series()
    {
        await using var h = EngineHarness.Open();
        var random = new Random(3);
        var series = new[] { Key("train/loss"), Key("val/acc"), Key("grad_norm", rank: "0"), Key("grad_norm", rank: "1") };
        ulong seq = 0;
        foreach (var key in series)
        {
            var (steps, _) = Range(0, 20_000, s => s);
            // Float32-exact values for half the series, full float64 noise for the others.
            var values = steps.Select(s => key.Metric == "val/acc" ? random.NextDouble() : (double)(float)random.NextDouble()).ToArray();
            await h.Engine.WriteAsync(Batch("w", ++seq, (key, steps, values)));
        }

        await h.Engine.SealNowAsync();

        var expected = new Dictionary<string, (long Count, double Sum)>();
        foreach (var key in series)
        {
            var read = h.Read(key)!;

            // The summary from the segments' rollups agrees with the points.
            var summary = (await h.Engine.GetSummaryAsync(key))!.Aggregate;
            Assert.Equal(read.Count, summary.Count);
            Assert.Equal(read.Values.AsSpan(0, read.Count).ToArray().Sum(), summary.Sum, 6);
            expected[$"{key.Metric}|{string.Join(',', key.Labels.Select(l => $"{l.Key}={l.Value}"))}"] = (read.Count, read.Values.AsSpan(0, read.Count).ToArray().Sum());
        }

        var segments = Path.Combine(h.DataDirectory, "segments").Replace("'", "''", StringComparison.Ordinal);
        using var connection = new DuckDBConnection("Data Source=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT s.metric, s.labels, count(*) AS n, sum(p.value::DOUBLE) AS total, min(p.step) AS first, max(p.step) AS last
            FROM read_parquet('{segments}/*-[fd].parquet', union_by_name = true) p
            JOIN (SELECT DISTINCT * FROM read_parquet('{segments}/*-s.parquet')) s USING (series_id)
            WHERE s.run_id = '{RunA}'
            GROUP BY s.metric, s.labels
            """;
        using var reader = command.ExecuteReader();
        var seen = 0;
        while (reader.Read())
        {
            var name = $"{reader.GetString(0)}|{reader.GetString(1)}";
            var (count, sum) = expected[name];
            Assert.Equal(count, Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture));
            Assert.Equal(sum, reader.GetDouble(3), 6);
            Assert.Equal(0, Convert.ToInt64(reader.GetValue(4), CultureInfo.InvariantCulture));
            Assert.Equal(19_999, Convert.ToInt64(reader.GetValue(5), CultureInfo.InvariantCulture));
            seen++;
        }

        Assert.Equal(series.Length, seen);
    }
}
