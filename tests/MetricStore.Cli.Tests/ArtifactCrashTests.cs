using System.Security.Cryptography;
using Google.Protobuf;
using MetricStore.Client;
using MetricStore.Protocol.V1;
using MetricStore.Tests;
using static MetricStore.Tests.ChildProcess;

namespace MetricStore.Cli.Tests;

/// <summary>
/// Artifacts under real crashes: 'metricstore serve' as a child process killed with SIGKILL. An
/// acknowledged upload is there after the restart, bytes verified; an upload cut by the kill is
/// not visible and leaves no bytes once the restarted server has swept.
/// </summary>
public sealed class ArtifactCrashTests
{
    [Fact]
    public async Task An_acknowledged_upload_survives_sigkill_and_a_cut_one_leaves_nothing()
    {
        using var data = new TempDirectory();
        var bytes = RandomNumberGenerator.GetBytes(3_000_000);
        string runId;
        using (var serve = await ServeProcess.StartAsync(["serve", "--data", data.Path, "--grpc-port", "0", "--http-port", "0"]))
        {
            using var client = new MetricStoreClient(serve.GrpcUrl);
            runId = (await client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = (await client.CreateExperimentAsync("artifact-crash")).Name })).RunId;
            var acked = await client.UploadArtifactAsync(runId, "model/acked.bin", new MemoryStream(bytes));
            Assert.Equal(bytes.Length, acked.Size);

            // An upload in flight when the server dies: header and 2 MiB sent, never completed.
            using var cut = client.Artifacts.Upload();
            await cut.RequestStream.WriteAsync(new UploadRequest { Header = new UploadHeader { RunId = runId, Path = "model/cut.bin" } });
            for (var i = 0; i < 32; i++)
            {
                await cut.RequestStream.WriteAsync(new UploadRequest { Chunk = ByteString.CopyFrom(bytes.AsSpan(i * 65536, 65536)) });
            }

            var tmp = Path.Combine(data.Path, "artifacts", "tmp");
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (Directory.GetFiles(tmp).Length == 0 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            Assert.NotEmpty(Directory.GetFiles(tmp)); // the kill lands mid-upload
            serve.KillHard();
        }

        Assert.NotEmpty(Directory.GetFiles(Path.Combine(data.Path, "artifacts", "tmp")));
        using (var restarted = await ServeProcess.StartAsync(["serve", "--data", data.Path, "--grpc-port", "0", "--http-port", "0"]))
        {
            using var client = new MetricStoreClient(restarted.GrpcUrl);
            Assert.Equal(["model/acked.bin"], (await client.ListArtifactsAsync(runId)).Select(a => a.Path));
            var back = new MemoryStream();
            await client.DownloadArtifactAsync(runId, "model/acked.bin", back); // verifies the sha256
            Assert.Equal(bytes, back.ToArray());
            Assert.Empty(Directory.GetFiles(Path.Combine(data.Path, "artifacts", "tmp")));
            Assert.Single(Directory.GetFiles(Path.Combine(data.Path, "artifacts", "blobs"), "*", SearchOption.AllDirectories));
            Assert.Contains("interrupted uploads", restarted.Output, StringComparison.Ordinal);
            Assert.Equal(0, await restarted.TerminateAsync());
        }
    }
}
