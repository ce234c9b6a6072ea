using System.Diagnostics;
using System.Globalization;

namespace MetricStore.Cli.Bench;

/// <summary>
/// A 'metricstore serve' child process for the bench harness, so the client and the server are
/// separate processes and the server's memory can be measured on its own.
/// </summary>
internal sealed class BenchServer : IDisposable
{
    private readonly Process _process;
    private readonly Queue<string> _recent;

    private BenchServer(Process process, Queue<string> recent, string grpcUrl, string httpUrl, string dataDirectory)
    {
        _process = process;
        _recent = recent;
        GrpcUrl = grpcUrl;
        HttpUrl = httpUrl;
        DataDirectory = dataDirectory;
    }

    public string GrpcUrl { get; }

    public string HttpUrl { get; }

    public string DataDirectory { get; }

    public int ProcessId => _process.Id;

    public static async Task<BenchServer> StartAsync(string dataDirectory, string durability, bool discard, CancellationToken cancellationToken, params string[] extraArguments)
    {
        var self = typeof(BenchServer).Assembly.Location;
        var host = Environment.ProcessPath ?? "dotnet";
        var start = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            start.ArgumentList.Add(self);
        }

        foreach (var a in new[] { "serve", "--data", dataDirectory, "--grpc-port", "0", "--http-port", "0", "--durability", durability })
        {
            start.ArgumentList.Add(a);
        }

        foreach (var a in extraArguments)
        {
            start.ArgumentList.Add(a);
        }

        if (discard)
        {
            start.ArgumentList.Add("--ingest-sink");
            start.ArgumentList.Add("discard");
        }

        var process = Process.Start(start) ?? throw new IOException("could not start 'metricstore serve'");
        var recent = new Queue<string>();
        _ = KeepAsync(process.StandardError, recent);
        string? grpc = null;
        string? http = null;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            var trimmed = line.Trim();
            if (trimmed.StartsWith("gRPC", StringComparison.Ordinal))
            {
                grpc = trimmed["gRPC".Length..].Trim();
            }
            else if (trimmed.StartsWith("HTTP/JSON", StringComparison.Ordinal))
            {
                http = trimmed["HTTP/JSON".Length..].Trim();
            }
            else if (trimmed.StartsWith("Press Ctrl+C", StringComparison.Ordinal))
            {
                break;
            }
        }

        if (grpc is null || http is null)
        {
            process.Kill();
            throw new IOException("'metricstore serve' exited before printing its address");
        }

        _ = KeepAsync(process.StandardOutput, recent);
        return new BenchServer(process, recent, grpc, http, dataDirectory);
    }

    /// <summary>
    /// What the server said last (stdout and stderr, up to 40 lines) and how it ended, for a report
    /// when a call fails: a server that died says why here.
    /// </summary>
    public string Describe()
    {
        lock (_recent)
        {
            var state = _process.HasExited ? $"exited with code {_process.ExitCode}" : "still running";
            return $"server (pid {_process.Id}) {state}; its last output:\n  " + string.Join("\n  ", _recent);
        }
    }

    private static async Task KeepAsync(StreamReader reader, Queue<string> into)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            lock (into)
            {
                into.Enqueue(line);
                if (into.Count > 40)
                {
                    into.Dequeue();
                }
            }
        }
    }

    /// <summary>Peak resident set size (VmHWM) in MiB, read from /proc; null where there is no /proc.</summary>
    public double? PeakRssMiB()
    {
        var status = $"/proc/{_process.Id}/status";
        if (!File.Exists(status))
        {
            return null;
        }

        foreach (var line in File.ReadLines(status))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                var kb = long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                return kb / 1024.0;
            }
        }

        return null;
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
