using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using MetricStore.Tests;

namespace MetricStore.Cli.Tests;

/// <summary>
/// The README's first command, for real: 'metricstore serve' as a child process, reached by
/// curl-like HTTP and by the CLI in another process, stopped with SIGTERM.
/// </summary>
public sealed partial class ServeProcessTests
{
    private const int Sigterm = 15;
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
        }

        // Restart on the same directory, given through the environment this time.
        using var again = await ServeProcess.StartAsync(["serve", "--grpc-port", "0", "--http-port", "0"], new Dictionary<string, string> { ["METRICSTORE_DATA"] = data.Path });
        var list = await RunCliAsync(["experiments", "list", "--json"], again.GrpcUrl);
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains(JsonDocument.Parse(list.Output).RootElement.EnumerateArray(), e => e.GetProperty("name").GetString() == "from-a-child");
        Assert.Equal(0, await again.TerminateAsync());
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

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    /// <summary>A 'metricstore serve' child process and the banner it printed.</summary>
    private sealed class ServeProcess : IDisposable
    {
        private readonly Process _process;
        private readonly System.Text.StringBuilder _output = new();

        private ServeProcess(Process process) => _process = process;

        public string Banner { get; private set; } = "";

        public string GrpcUrl { get; private set; } = "";

        public string HttpUrl { get; private set; } = "";

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public static Process Launch(string[] args, IReadOnlyDictionary<string, string>? environment)
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "metricstore.dll");
            Assert.True(File.Exists(dll), $"{dll} is missing");
            var start = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.ArgumentList.Add(dll);
            foreach (var a in args)
            {
                start.ArgumentList.Add(a);
            }

            start.Environment.Remove("METRICSTORE_URL");
            start.Environment.Remove("METRICSTORE_DATA");
            foreach (var (k, v) in environment ?? new Dictionary<string, string>())
            {
                start.Environment[k] = v;
            }

            return Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        }

        public static async Task<ServeProcess> StartAsync(string[] args, IReadOnlyDictionary<string, string>? environment = null)
        {
            var serve = new ServeProcess(Launch(args, environment));
            var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            serve._process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    ready.TrySetException(new InvalidOperationException("serve exited before it was ready:\n" + serve.Output));
                    return;
                }

                lock (serve._output)
                {
                    serve._output.AppendLine(e.Data);
                }

                var line = e.Data.Trim();
                if (line.StartsWith("gRPC", StringComparison.Ordinal))
                {
                    serve.GrpcUrl = line["gRPC".Length..].Trim();
                }
                else if (line.StartsWith("HTTP/JSON", StringComparison.Ordinal))
                {
                    serve.HttpUrl = line["HTTP/JSON".Length..].Trim();
                }
                else if (line.StartsWith("Press Ctrl+C", StringComparison.Ordinal))
                {
                    serve.Banner = serve.Output;
                    ready.TrySetResult();
                }
            };
            serve._process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    lock (serve._output)
                    {
                        serve._output.AppendLine("stderr: " + e.Data);
                    }
                }
            };
            serve._process.BeginOutputReadLine();
            serve._process.BeginErrorReadLine();
            await ready.Task.WaitAsync(s_timeout);
            Assert.StartsWith("http://127.0.0.1:", serve.GrpcUrl, StringComparison.Ordinal);
            Assert.StartsWith("http://127.0.0.1:", serve.HttpUrl, StringComparison.Ordinal);
            return serve;
        }

        public async Task<int> TerminateAsync()
        {
            Assert.Equal(0, Kill(_process.Id, Sigterm));
            using var cts = new CancellationTokenSource(s_timeout);
            await _process.WaitForExitAsync(cts.Token);
            return _process.ExitCode;
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }

            _process.Dispose();
        }
    }
}
