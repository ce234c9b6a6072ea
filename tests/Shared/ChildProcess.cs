using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MetricStore.Tests;

/// <summary>The real metricstore binary as a child process (serve, or a client command).</summary>
internal static partial class ChildProcess
{
    private const int Sigterm = 15;
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    /// <summary>A 'metricstore serve' child process and the banner it printed.</summary>
    internal sealed class ServeProcess : IDisposable
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

        /// <param name="args">The metricstore arguments.</param>
        /// <param name="environment">Variables to set for the child.</param>
        /// <param name="wrapper">A command that runs the metricstore command line given as its last arguments (e.g. unshare ... sh -c '...').</param>
        public static Process Launch(string[] args, IReadOnlyDictionary<string, string>? environment, string[]? wrapper = null)
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "metricstore.dll");
            Assert.True(File.Exists(dll), $"{dll} is missing");
            var start = new ProcessStartInfo(wrapper is { Length: > 0 } ? wrapper[0] : "dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            if (wrapper is { Length: > 0 })
            {
                foreach (var w in wrapper.Skip(1))
                {
                    start.ArgumentList.Add(w);
                }

                start.ArgumentList.Add("dotnet");
            }

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

        public static async Task<ServeProcess> StartAsync(string[] args, IReadOnlyDictionary<string, string>? environment = null, string[]? wrapper = null)
        {
            var serve = new ServeProcess(Launch(args, environment, wrapper));
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

        /// <summary>SIGKILL: the process dies at once, with no chance to flush or close anything.</summary>
        public void KillHard()
        {
            _process.Kill();
            _process.WaitForExit();
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
