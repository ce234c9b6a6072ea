using Grpc.Core;
using MetricStore.Client;
using MetricStore.Protocol.V1;
using MetricStore.Tests;
using static MetricStore.Tests.ChildProcess;

namespace MetricStore.Cli.Tests;

/// <summary>
/// 'metricstore serve' on a data directory it cannot write: a full file system, a read-only mount,
/// a read-only WAL directory. Each case is real: a private mount namespace (unshare) holds a small
/// tmpfs with a copy of a store that has acknowledged points, made full or read-only by the kernel.
/// The server must refuse to start with a message naming the cause, change no file, and start
/// with every point once the problem is fixed.
/// </summary>
public sealed class DataDirectoryStartTests
{
    private const int Points = 20_000;
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);

    // Runs inside the namespace: $1 mode, $2 mount point, $3 the store to copy, $4 where to report;
    // the rest is the serve command, run once on the broken directory and then, fixed, for good.
    private const string Script = """
        set -eu
        mode=$1; mnt=$2; src=$3; out=$4; shift 4
        mount -t tmpfs -o size=32m tmpfs "$mnt"
        cp -a "$src" "$mnt/data"
        snapshot() { (cd "$mnt/data" && find . -printf '%y %m %p\n' | sort && find . -type f -exec sha256sum {} + | sort -k2); }
        case "$mode" in
          full) dd if=/dev/zero of="$mnt/filler" bs=64k 2>/dev/null || true ;;
          readonly) mount -o remount,ro "$mnt" ;;
          readonly-wal) mount --bind "$mnt/data/wal" "$mnt/data/wal"; mount -o remount,bind,ro "$mnt/data/wal" ;;
        esac
        snapshot > "$out/before"
        set +e
        timeout 60 "$@" > "$out/refused.stdout" 2> "$out/refused.stderr"
        echo $? > "$out/refused.rc"
        set -e
        snapshot > "$out/after"
        case "$mode" in
          full) rm "$mnt/filler" ;;
          readonly) mount -o remount,rw "$mnt" ;;
          readonly-wal) umount "$mnt/data/wal" ;;
        esac
        exec "$@"
        """;

    [Theory]
    [InlineData("full", "is full (")]
    [InlineData("readonly", "is not writable: it is on a read-only file system")]
    [InlineData("readonly-wal", "/data/wal'): it is on a read-only file system")]
    public async Task Serve_refuses_an_unwritable_data_directory_changing_nothing_and_starts_with_every_point_once_fixed(string mode, string expected)
    {
        using var root = new TempDirectory();
        var source = Path.Combine(root.Path, "data");
        var mount = Directory.CreateDirectory(Path.Combine(root.Path, "mnt")).FullName;
        var report = Directory.CreateDirectory(Path.Combine(root.Path, "report")).FullName;
        var runId = await WriteStoreAsync(source);

        var wrapper = InMountNamespace(Script, mode, mount, source, report);
        var dataInMount = Path.Combine(mount, "data");
        using var serve = await ServeProcess.StartAsync(["serve", "--data", dataInMount, "--grpc-port", "0", "--http-port", "0"], wrapper: wrapper);

        var stderr = await File.ReadAllTextAsync(Path.Combine(report, "refused.stderr"));
        Assert.Equal("1", (await File.ReadAllTextAsync(Path.Combine(report, "refused.rc"))).Trim());
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.Contains($"'{dataInMount}'", stderr, StringComparison.Ordinal);
        Assert.Contains("nothing in the data directory was changed", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Press Ctrl+C", await File.ReadAllTextAsync(Path.Combine(report, "refused.stdout")), StringComparison.Ordinal);
        var before = await File.ReadAllTextAsync(Path.Combine(report, "before"));
        Assert.Contains("meta.db", before, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(Path.Combine(report, "after")));

        using var client = new MetricStoreClient(serve.GrpcUrl);
        var (steps, values, _) = await client.ReadSeriesAsync(runId, "train/loss");
        Assert.Equal(Enumerable.Range(0, Points).Select(i => (long)i), steps);
        Assert.Equal(Enumerable.Range(0, Points).Select(Loss), values);
        Assert.Equal("0.01", (await client.GetRunAsync(runId)).Params["lr"]);
        Assert.Equal(0, await serve.TerminateAsync());
    }

    [Fact]
    public async Task A_disk_that_fills_up_while_ingesting_stops_writes_with_unavailable_and_keeps_every_acknowledged_point_readable()
    {
        using var root = new TempDirectory();
        var mount = Directory.CreateDirectory(Path.Combine(root.Path, "mnt")).FullName;
        const string Small = """
            set -eu
            mount -t tmpfs -o size=6m tmpfs "$1"
            shift
            exec "$@"
            """;
        var wrapper = InMountNamespace(Small, mount);
        using var serve = await ServeProcess.StartAsync(["serve", "--data", Path.Combine(mount, "data"), "--grpc-port", "0", "--http-port", "0", "--seal-threshold", "100000000"], wrapper: wrapper);
        using var client = new MetricStoreClient(serve.GrpcUrl);
        var run = await client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = (await client.CreateExperimentAsync("fills-up")).Name });

        // Incompressible doubles, one request at a time, until the WAL cannot grow any more.
        const int PerRequest = 10_000;
        var random = new Random(7);
        var sent = new List<double>();
        ulong acked = 0;
        RpcException? refused = null;
        using (var call = client.Ingest.Write())
        {
            for (ulong seq = 1; seq <= 1000 && refused is null; seq++)
            {
                var request = Request(run.RunId, seq, sent.Count, Enumerable.Range(0, PerRequest).Select(_ => random.NextDouble()).ToArray());
                try
                {
                    await call.RequestStream.WriteAsync(request).WaitAsync(s_timeout);
                    Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None).WaitAsync(s_timeout), "the stream ended without an ack or an error");
                    acked = call.ResponseStream.Current.DurableSeq;
                    Assert.Equal(seq, acked);
                    sent.AddRange(request.Batches[0].Values);
                }
                catch (RpcException e)
                {
                    refused = e;
                }
                catch (TimeoutException)
                {
                    Assert.Fail($"seq {seq}: no ack and no error in {s_timeout}; server output:\n{serve.Output}");
                }
            }
        }

        Assert.True(refused is not null, serve.Output);
        Assert.True(acked > 0, "nothing was acknowledged before the disk filled up");
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Contains("No space left on device", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("restart the server", refused.Status.Detail, StringComparison.Ordinal);

        // Reads still work, and they hold exactly what was acknowledged.
        var (steps, values, _) = await client.ReadSeriesAsync(run.RunId, "loss");
        Assert.Equal(sent.Count, steps.Length);
        Assert.Equal(sent, values);

        // The engine stays stopped: a new stream is refused the same way, without an ack.
        using (var again = client.Ingest.Write())
        {
            await again.RequestStream.WriteAsync(Request(run.RunId, acked + 1, sent.Count, [1.0]));
            var error = await Assert.ThrowsAsync<RpcException>(() => again.ResponseStream.MoveNext(CancellationToken.None).WaitAsync(s_timeout));
            Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        }

        Assert.True(serve.Output.Contains("No space left on device", StringComparison.Ordinal), serve.Output);
        await serve.TerminateAsync();
    }

    /// <summary>
    /// Runs a bash script, then the command line appended to it, in a private mount namespace that
    /// vanishes with it: root enters one directly, anyone else maps themselves to root in a user namespace.
    /// </summary>
    private static string[] InMountNamespace(string script, params string[] arguments) =>
        [.. Environment.UserName == "root" ? ["unshare", "--mount", "--propagation", "private"] : new[] { "unshare", "--user", "--map-root-user", "--mount" }, "bash", "-c", script, "bash", .. arguments];

    private static WriteRequest Request(string runId, ulong seq, long firstStep, double[] values)
    {
        var batch = new SeriesBatch { Key = new MetricStore.Protocol.V1.SeriesKey { RunId = runId, Metric = "loss" } };
        for (var i = 0; i < values.Length; i++)
        {
            batch.Steps.Add(firstStep + i);
            batch.Values.Add(values[i]);
        }

        var request = new WriteRequest { WriterId = "filler", Seq = seq };
        request.Batches.Add(batch);
        return request;
    }

    private static double Loss(int step) => 1.0 / (1 + step);

    private static async Task<string> WriteStoreAsync(string dataDirectory)
    {
        using var serve = await ServeProcess.StartAsync(["serve", "--data", dataDirectory, "--grpc-port", "0", "--http-port", "0"]);
        using var client = new MetricStoreClient(serve.GrpcUrl);
        string runId;
        await using (var run = await client.StartRunAsync("unwritable", parameters: new Dictionary<string, string> { ["lr"] = "0.01" }))
        {
            runId = run.Id;
            for (var step = 0; step < Points; step++)
            {
                run.Log("train/loss", step, Loss(step));
            }

            await run.FlushAsync();
        }

        Assert.Equal(0, await serve.TerminateAsync());
        return runId;
    }
}
