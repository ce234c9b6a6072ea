using System.Text.Json;
using MetricStore.Tests;
using static MetricStore.Tests.ChildProcess;

namespace MetricStore.Cli.Tests;

/// <summary>'metricstore bench query', 'bench search' and 'bench artifacts' end to end on small datasets: they build, measure and verify.</summary>
public sealed class BenchQueryTests
{
    private static async Task<CliResult> BenchAsync(string data)
    {
        using var process = ServeProcess.Launch(["bench", "query", "--data", data, "--big-steps", "30000", "--runs", "4", "--run-steps", "5000", "--iterations", "5", "--json"], null);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(cts.Token);
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task Bench_search_imports_runs_times_searches_and_verifies_them()
    {
        using var process = ServeProcess.Launch(["bench", "search", "--runs", "400", "--iterations", "3", "--json"], null);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(cts.Token);
        var result = new CliResult(process.ExitCode, await stdout, await stderr);
        Assert.True(result.ExitCode == 0, result.ToString());
        var report = JsonDocument.Parse(result.Output.TrimEnd().Split('\n')[^1]).RootElement;
        Assert.Equal(400, report.GetProperty("runs").GetInt32());
        Assert.True(report.GetProperty("verified").GetBoolean(), result.ToString());
        foreach (var key in new[] { "filter_p50_ms", "filter_p99_ms", "order_p50_ms", "tag_in_p50_ms", "rare_p50_ms" })
        {
            Assert.True(report.GetProperty(key).GetDouble() > 0, $"{key} in {report}");
        }
    }

    [Fact]
    public async Task Bench_artifacts_transfers_over_grpc_and_http_and_verifies_every_hash()
    {
        using var process = ServeProcess.Launch(["bench", "artifacts", "--size-mb", "6", "--repeats", "2", "--json"], null);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(cts.Token);
        var result = new CliResult(process.ExitCode, await stdout, await stderr);
        Assert.True(result.ExitCode == 0, result.ToString());
        var report = JsonDocument.Parse(result.Output.TrimEnd().Split('\n')[^1]).RootElement;
        Assert.True(report.GetProperty("verified").GetBoolean(), result.ToString());
        Assert.Equal(6, report.GetProperty("size_mib").GetInt32());
        foreach (var key in new[] { "baseline_copy_mib_s", "upload_grpc_mib_s", "download_grpc_mib_s", "upload_http_mib_s", "download_http_mib_s" })
        {
            Assert.True(report.GetProperty(key).GetDouble() > 0, $"{key} in {report}");
        }
    }

    [Fact]
    public async Task Bench_query_verifies_its_answers_and_reuses_the_dataset_in_data()
    {
        using var data = new TempDirectory();
        var first = await BenchAsync(data.Path);
        Assert.True(first.ExitCode == 0, first.ToString());
        var report = JsonDocument.Parse(first.Output.TrimEnd().Split('\n')[^1]).RootElement;
        Assert.True(report.GetProperty("verified").GetBoolean(), first.ToString());
        foreach (var key in new[] { "downsample_p50_ms", "downsample_p99_ms", "zoom_p50_ms", "duckdb_downsample_ms", "speedup_vs_duckdb", "raw_read_points_per_sec", "latest_1000_ms" })
        {
            Assert.True(report.GetProperty(key).GetDouble() > 0, $"{key} in {report}");
        }

        Assert.Equal(4, report.GetProperty("latest_series").GetInt32());
        Assert.Contains("building", first.Error, StringComparison.Ordinal);

        var second = await BenchAsync(data.Path);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("reusing the dataset", second.Error, StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, JsonDocument.Parse(second.Output.TrimEnd().Split('\n')[^1]).RootElement.GetProperty("build_s").ValueKind);
    }
}
