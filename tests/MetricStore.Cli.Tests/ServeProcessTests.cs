using System.Text.Json;
using MetricStore.Tests;
using static MetricStore.Tests.ChildProcess;

namespace MetricStore.Cli.Tests;

/// <summary>
/// The README's first command, for real: 'metricstore serve' as a child process, reached by
/// curl-like HTTP and by the CLI in another process, stopped with SIGTERM.
/// </summary>
public sealed class ServeProcessTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Serve_prints_its_addresses_answers_health_and_stops_cleanly_on_sigterm_keeping_data()
    {
        using var data = new TempDirectory();
        string grpc;
        using (var serve = await ServeProcess.StartAsync(["serve", "--data", data.Path, "--grpc-port", "0", "--http-port", "0"]))
        {
            Assert.Contains(Path.GetFullPath(data.Path), serve.Banner, StringComparison.Ordinal);
            grpc = serve.GrpcUrl;
            using var http = new HttpClient { BaseAddress = new Uri(serve.HttpUrl) };
            using (var health = await http.GetAsync("/healthz"))
            {
                Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
            }

            var created = await RunCliAsync(["experiments", "create", "from-a-child", "--json"], grpc);
            Assert.True(created.ExitCode == 0, created.ToString());
            Assert.Equal("from-a-child", JsonDocument.Parse(created.Output).RootElement.GetProperty("name").GetString());

            var exit = await serve.TerminateAsync();
            Assert.Equal(0, exit);
            Assert.Contains("stopped cleanly", serve.Output, StringComparison.Ordinal);
            Assert.Contains("Heap governor: a background collection when the heap grows 64 MiB past its live size; a compaction when a full collection leaves over 128 MiB free", serve.Output, StringComparison.Ordinal);
        }

        // Restart on the same directory, given through the environment this time, as is turning the heap governor off.
        using var again = await ServeProcess.StartAsync(
            ["serve", "--grpc-port", "0", "--http-port", "0"],
            new Dictionary<string, string> { ["METRICSTORE_DATA"] = data.Path, ["METRICSTORE_HEAP_SLACK_MB"] = "0", ["METRICSTORE_HEAP_COMPACT_FREE_MB"] = "0" });
        var list = await RunCliAsync(["experiments", "list", "--json"], again.GrpcUrl);
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains(JsonDocument.Parse(list.Output).RootElement.EnumerateArray(), e => e.GetProperty("name").GetString() == "from-a-child");
        Assert.Equal(0, await again.TerminateAsync());
        Assert.DoesNotContain("Heap governor", again.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_on_a_data_directory_that_is_a_file_fails_with_a_clear_error()
    {
        var file = Path.GetTempFileName();
        try
        {
            using var process = ServeProcess.Launch(["serve", "--data", file, "--grpc-port", "0", "--http-port", "0"], null);
            var stderr = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(s_timeout);
            await process.WaitForExitAsync(cts.Token);
            Assert.NotEqual(0, process.ExitCode);
            Assert.Contains("cannot create the data directory", await stderr, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static async Task<CliResult> RunCliAsync(string[] args, string serverUrl)
    {
        using var process = ServeProcess.Launch(args, new Dictionary<string, string> { ["METRICSTORE_URL"] = serverUrl });
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(s_timeout);
        await process.WaitForExitAsync(cts.Token);
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }
}
