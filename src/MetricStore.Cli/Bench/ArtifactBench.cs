using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using MetricStore.Client;

namespace MetricStore.Cli.Bench;

/// <summary>What 'metricstore bench artifacts' was asked to do.</summary>
internal sealed record ArtifactBenchOptions(string? ServerUrl, string? HttpUrl, int SizeMiB, int Repeats, bool Json);

/// <summary>
/// The artifact transfer benchmark: uploads and downloads one incompressible file of
/// <c>--size-mb</c> MiB over gRPC and over HTTP, each transfer verified by sha256 end to end, and
/// measures in the same run the machine's own ceiling for the same work: read the file, hash it,
/// write a copy and fsync it. Without --server it starts a server as a child process on a temp
/// directory.
/// </summary>
internal static class ArtifactBench
{
    private const int BufferBytes = 1024 * 1024;

    public static async Task<int> RunAsync(ArtifactBenchOptions o, TextWriter output, TextWriter progress, CancellationToken cancellationToken)
    {
        var temp = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(temp);
        BenchServer? child = null;
        try
        {
            var size = (long)o.SizeMiB * 1024 * 1024;
            var source = Path.Combine(temp, "source.bin");
            await WriteRandomFileAsync(source, size, cancellationToken);
            await progress.WriteLineAsync($"[bench] wrote a {o.SizeMiB} MiB incompressible file");

            string grpcUrl, httpUrl;
            if (o.ServerUrl is null)
            {
                child = await BenchServer.StartAsync(Path.Combine(temp, "data"), "sync", discard: false, cancellationToken);
                (grpcUrl, httpUrl) = (child.GrpcUrl, child.HttpUrl);
            }
            else
            {
                grpcUrl = o.ServerUrl;
                httpUrl = o.HttpUrl ?? "";
            }

            using var client = new MetricStoreClient(new MetricStoreClientOptions { Address = MetricStoreClientOptions.Parse(grpcUrl), Capture = CaptureOptions.None });
            using var http = new HttpClient { BaseAddress = httpUrl.Length > 0 ? new Uri(httpUrl) : null, Timeout = Timeout.InfiniteTimeSpan };
            var experiment = "bench-artifacts-" + Guid.NewGuid().ToString("N")[..8];
            await client.CreateExperimentAsync(experiment, cancellationToken: cancellationToken);
            var runId = (await client.Tracking.CreateRunAsync(new Protocol.V1.CreateRunRequest { ExperimentName = experiment }, cancellationToken: cancellationToken)).RunId;

            var verified = true;
            var results = new Dictionary<string, List<double>>
            {
                ["baseline_copy"] = [],
                ["upload_grpc"] = [],
                ["download_grpc"] = [],
                ["upload_http"] = [],
                ["download_http"] = [],
            };

            for (var repeat = 0; repeat < o.Repeats; repeat++)
            {
                // New bytes each round (the first 8 bytes change), so no upload is answered by an existing blob.
                await StampAsync(source, repeat, cancellationToken);
                var expected = await HashFileAsync(source, cancellationToken);

                var copy = Path.Combine(temp, "copy.bin");
                results["baseline_copy"].Add(await TimeAsync(size, async () => verified &= await CopyWithHashAsync(source, copy, cancellationToken) == expected));
                File.Delete(copy);

                var grpcPath = $"grpc/{repeat}.bin";
                results["upload_grpc"].Add(await TimeAsync(size, async () => verified &= (await client.UploadFileAsync(runId, source, grpcPath, cancellationToken)).Sha256 == expected));
                var back = Path.Combine(temp, "back.bin");
                results["download_grpc"].Add(await TimeAsync(size, async () => verified &= (await client.DownloadFileAsync(runId, grpcPath, back, cancellationToken)).Sha256 == expected));
                verified &= await HashFileAsync(back, cancellationToken) == expected;
                File.Delete(back);

                if (httpUrl.Length > 0)
                {
                    await StampAsync(source, repeat + 1_000_000, cancellationToken);
                    var httpExpected = await HashFileAsync(source, cancellationToken);
                    var httpPath = $"http/{repeat}.bin";
                    results["upload_http"].Add(await TimeAsync(size, async () => verified &= await HttpPutAsync(http, runId, httpPath, source, cancellationToken) == httpExpected));
                    results["download_http"].Add(await TimeAsync(size, async () => verified &= await HttpGetAsync(http, runId, httpPath, back, cancellationToken) == httpExpected));
                    File.Delete(back);
                }

                await progress.WriteLineAsync(
                    $"[bench] round {repeat + 1}/{o.Repeats}: " + string.Join(", ", results.Where(r => r.Value.Count > repeat).Select(r => $"{r.Key} {r.Value[repeat]:F0} MiB/s")));
            }

            var report = new JsonObject { ["size_mib"] = o.SizeMiB, ["repeats"] = o.Repeats };
            foreach (var (name, values) in results.Where(r => r.Value.Count > 0))
            {
                report[$"{name}_mib_s"] = Math.Round(Median(values), 1);
            }

            report["verified"] = verified;
            if (!o.Json)
            {
                await output.WriteLineAsync($"baseline   read + sha256 + write + fsync  {report["baseline_copy_mib_s"]} MiB/s (this machine's ceiling for the same work)");
                await output.WriteLineAsync($"gRPC       upload {report["upload_grpc_mib_s"]} MiB/s   download {report["download_grpc_mib_s"]} MiB/s");
                if (httpUrl.Length > 0)
                {
                    await output.WriteLineAsync($"HTTP       upload {report["upload_http_mib_s"]} MiB/s   download {report["download_http_mib_s"]} MiB/s");
                }

                await output.WriteLineAsync($"verified   {(verified ? "yes: every transfer's sha256 matched the source file's" : "NO")} (median of {o.Repeats} rounds of {o.SizeMiB} MiB)");
            }

            await output.WriteLineAsync(report.ToJsonString());
            return verified ? 0 : 1;
        }
        finally
        {
            child?.Dispose();
            try
            {
                Directory.Delete(temp, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<double> TimeAsync(long bytes, Func<Task> transfer)
    {
        var clock = Stopwatch.StartNew();
        await transfer();
        return bytes / 1024.0 / 1024.0 / clock.Elapsed.TotalSeconds;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private static async Task WriteRandomFileAsync(string path, long size, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        var buffer = new byte[BufferBytes];
        for (long written = 0; written < size; written += buffer.Length)
        {
            RandomNumberGenerator.Fill(buffer);
            await file.WriteAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, size - written)), cancellationToken);
        }
    }

    private static async Task StampAsync(string path, long stamp, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, stamp);
        await file.WriteAsync(bytes, cancellationToken);
    }

    private static async Task<string> HashFileAsync(string path, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(file, cancellationToken));
    }

    /// <summary>The baseline: the work a verified transfer does, without the network or the server.</summary>
    private static async Task<string> CopyWithHashAsync(string source, string target, CancellationToken cancellationToken)
    {
        await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[BufferBytes];
        int read;
        while ((read = await input.ReadAsync(buffer, cancellationToken)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
        }

        output.Flush(flushToDisk: true);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>PUT with the body hashed as it is sent; returns the server's sha256 when it equals the sender's, else "".</summary>
    private static async Task<string> HttpPutAsync(HttpClient http, string runId, string path, string source, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using var hashing = new HashingReadStream(file);
        using var content = new StreamContent(hashing, BufferBytes);
        content.Headers.ContentLength = file.Length;
        using var response = await http.PutAsync($"/v1/runs/{runId}/artifacts/{path}", content, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new IOException($"PUT {path}: HTTP {(int)response.StatusCode} {body}");
        }

        var stored = JsonDocument.Parse(body).RootElement.GetProperty("sha256").GetString();
        return stored == hashing.Sha256() ? stored! : "";
    }

    /// <summary>GET into a file, hashed as it arrives; returns the hash when it equals the server's header, else "".</summary>
    private static async Task<string> HttpGetAsync(HttpClient http, string runId, string path, string target, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync($"/v1/runs/{runId}/artifacts/{path}", HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        var declared = response.Headers.GetValues("X-MetricStore-Sha256").Single();
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        await using var output = new FileStream(target, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[BufferBytes];
        int read;
        while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
        }

        output.Flush(flushToDisk: true);
        var sha = Convert.ToHexStringLower(hash.GetHashAndReset());
        return sha == declared ? sha : "";
    }

    /// <summary>A read-only stream that hashes what is read through it.</summary>
    private sealed class HashingReadStream(Stream inner) : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private string? _sha256;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => inner.Length;

        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }

        /// <summary>The hash of everything read, once the end was reached (the sender may dispose the stream after that).</summary>
        public string Sha256() => _sha256 ?? "";

        public override int Read(byte[] buffer, int offset, int count) => Hashed(buffer.AsSpan(offset), inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            return Hashed(buffer.Span, read);
        }

        private int Hashed(ReadOnlySpan<byte> buffer, int read)
        {
            if (read > 0)
            {
                _hash.AppendData(buffer[..read]);
            }
            else
            {
                _sha256 ??= Convert.ToHexStringLower(_hash.GetHashAndReset());
            }

            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _hash.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
