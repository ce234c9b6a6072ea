using System.Text.Json;
using MetricStore.Tests;
using static MetricStore.Tests.ChildProcess;

namespace MetricStore.Cli.Tests;

/// <summary>'metricstore bench ingest', 'bench query', 'bench search' and 'bench artifacts' end to end on small datasets: they build, measure and verify.</summary>
public sealed class BenchQueryTests
{
    /// <summary>Runs 'metricstore bench ARGS --json' as a child process; it must exit 0 with a last line that says verified.</summary>
    private static async Task<(JsonElement Report, CliResult Result)> BenchAsync(params string[] args)
    {
        using var process = ServeProcess.Launch(["bench", .. args, "--json"], null);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(cts.Token);
        var result = new CliResult(process.ExitCode, await stdout, await stderr);
        Assert.True(result.ExitCode == 0, result.ToString());
        var report = JsonDocument.Parse(result.Output.TrimEnd().Split('\n')[^1]).RootElement;
        Assert.True(report.GetProperty("verified").GetBoolean(), result.ToString());
        return (report, result);
    }

    private static void Positive(JsonElement report, params string[] keys)
    {
        foreach (var key in keys)
        {
            Assert.True(report.GetProperty(key).GetDouble() > 0, $"{key} in {report}");
        }
    }

    [Fact]
    public async Task Bench_bytes_measures_the_synthetic_curves_and_a_real_log_as_sealed()
    {
        using var logs = new TempDirectory();
        var random = new Random(3);
        await File.WriteAllLinesAsync(Path.Combine(logs.Path, "llmc-gpt2-124m-10Btok_main.log"), Enumerable.Range(0, 2000).SelectMany(s => new[]
        {
            string.Create(System.Globalization.CultureInfo.InvariantCulture, $"s:{s} trl:{4 + (2.0 / (s + 1)) + (random.NextDouble() / 100):F4} lr:{0.0006 * Math.Min(1, s / 100.0):F6} norm:{1 + random.NextDouble():F2}"),
            s % 250 == 0 ? $"s:{s} tel:3.5" : "",
        }));

        var (report, _) = await BenchAsync("bytes", "--points", "50000", "--logs", logs.Path);
        var datasets = report.GetProperty("datasets").EnumerateArray().ToDictionary(d => d.GetProperty("dataset").GetString()!);
        Assert.Equal(4, datasets.Count);
        var f32 = datasets["synthetic loss, float32-origin noise"];
        var f64 = datasets["synthetic loss, float64 noise"];
        Assert.Equal("float", f32.GetProperty("value_type").GetString());
        Assert.Equal("double", f64.GetProperty("value_type").GetString());
        Assert.Equal(50_000, f32.GetProperty("points").GetInt64());
        Assert.InRange(f32.GetProperty("bytes_per_point").GetDouble(), 1.0, 4.5);
        Assert.True(f64.GetProperty("bytes_per_point").GetDouble() > f32.GetProperty("bytes_per_point").GetDouble() + 1, report.ToString());
        foreach (var synthetic in new[] { f32, f64 })
        {
            // No lossless file can be smaller than the information in its values.
            var entropy = synthetic.GetProperty("value_entropy_bytes_per_point").GetDouble();
            Assert.InRange(entropy, 2.0, synthetic.GetProperty("column_bytes_per_point").GetProperty("value").GetDouble());
        }

        var real = datasets["llm.c GPT-2 124M: train loss, lr, grad norm"];
        Assert.Equal(3, real.GetProperty("series").GetInt32());
        Assert.Equal(6000, real.GetProperty("points").GetInt64()); // trl rows only: 2000 steps x 3 series
        var columns = real.GetProperty("column_bytes_per_point");
        Assert.True(columns.GetProperty("value").GetDouble() > columns.GetProperty("step").GetDouble(), report.ToString());
        Assert.Equal("float", datasets["llm.c GPT-2 124M: train loss, lr, grad norm (as float32)"].GetProperty("value_type").GetString());
    }

    [Fact]
    public async Task Bench_ingest_streams_seals_verifies_every_point_and_reports_every_key()
    {
        var (report, result) = await BenchAsync("ingest", "--duration", "1", "--warmup", "1", "--writers", "2", "--batch", "2000", "--seal-threshold", "100000");
        Assert.True(report.GetProperty("verified").GetBoolean(), result.ToString());
        Assert.True(report.GetProperty("points_per_sec").GetDouble() > 0, result.ToString());
        Assert.True(report.GetProperty("ceiling_points_per_sec").GetDouble() > 0, result.ToString());
        Assert.InRange(report.GetProperty("ratio").GetDouble(), 0.0001, 100);
        Assert.True(report.GetProperty("ack_p99_ms").GetDouble() >= report.GetProperty("ack_p50_ms").GetDouble(), result.ToString());
        Assert.True(report.GetProperty("server_peak_rss_mb").GetDouble() > 0, result.ToString());
        Assert.InRange(report.GetProperty("bytes_per_point").GetDouble(), 0.1, 24);
        Assert.InRange(report.GetProperty("value_entropy_bytes_per_point").GetDouble(), 2.5, 3.2);
        var timed = report.GetProperty("points").GetInt64();
        var total = report.GetProperty("points_total").GetInt64();
        Assert.True(timed > 0 && total > timed, $"timed {timed}, total {total}: the warm-up's points are verified but not timed");
        Assert.Equal(1.0, report.GetProperty("warmup_s").GetDouble());
        Assert.Contains("[warm-up]", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_search_imports_runs_times_searches_and_verifies_them()
    {
        var (report, _) = await BenchAsync("search", "--runs", "400", "--iterations", "3");
        Assert.Equal(400, report.GetProperty("runs").GetInt32());
        Positive(report, "filter_p50_ms", "filter_p99_ms", "order_p50_ms", "tag_in_p50_ms", "rare_p50_ms");
    }

    [Fact]
    public async Task Bench_artifacts_transfers_over_grpc_and_http_and_verifies_every_hash()
    {
        var (report, _) = await BenchAsync("artifacts", "--size-mb", "6", "--repeats", "2");
        Assert.Equal(6, report.GetProperty("size_mib").GetInt32());
        Positive(report, "baseline_copy_mib_s", "upload_grpc_mib_s", "download_grpc_mib_s", "upload_http_mib_s", "download_http_mib_s");
    }

    [Fact]
    public async Task Bench_query_verifies_its_answers_and_reuses_the_dataset_in_data()
    {
        using var data = new TempDirectory();
        string[] args = ["query", "--data", data.Path, "--big-steps", "30000", "--runs", "4", "--run-steps", "5000", "--iterations", "5"];
        var (report, first) = await BenchAsync(args);
        Positive(report, "downsample_p50_ms", "downsample_p99_ms", "zoom_p50_ms", "duckdb_downsample_ms", "speedup_vs_duckdb", "raw_read_points_per_sec", "raw_read_step_value_points_per_sec", "latest_1000_ms");
        Assert.Equal(4, report.GetProperty("latest_series").GetInt32());
        Assert.Contains("building", first.Error, StringComparison.Ordinal);

        var (reused, second) = await BenchAsync(args);
        Assert.Contains("reusing the dataset", second.Error, StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, reused.GetProperty("build_s").ValueKind);
    }
}
