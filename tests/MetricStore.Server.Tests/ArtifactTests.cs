using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using MetricStore.Protocol.V1;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>Artifacts on a real server: gRPC and HTTP transfers, content addressing, path rules, limits and cleanup.</summary>
public sealed class ArtifactTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static string Sha(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static async Task<string> NewRunAsync(TestServer server)
    {
        var run = await server.Client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = await ExperimentAsync(server) });
        return run.RunId;
    }

    private static async Task<string> ExperimentAsync(TestServer server)
    {
        var name = Unique.Name("artifacts");
        await server.Client.CreateExperimentAsync(name);
        return name;
    }

    private static string[] BlobFiles(TestServer server) =>
        Directory.GetFiles(Path.Combine(server.DataDirectory, "artifacts", "blobs"), "*", SearchOption.AllDirectories);

    private static string[] PartialFiles(TestServer server) =>
        Directory.GetFiles(Path.Combine(server.DataDirectory, "artifacts", "tmp"));

    [Fact]
    public async Task Upload_list_and_download_over_grpc_and_http_with_one_blob_per_content()
    {
        var server = fixture.Server;
        var run = await NewRunAsync(server);
        var other = await NewRunAsync(server);
        var bytes = RandomBytes((3 * 1024 * 1024) + 12345, 1); // several chunks, the last one partial
        var blobsBefore = BlobFiles(server).Length;

        var info = await server.Client.UploadArtifactAsync(run, "./model/weights.bin", new MemoryStream(bytes));
        Assert.Equal("model/weights.bin", info.Path);
        Assert.Equal(bytes.Length, info.Size);
        Assert.Equal(Sha(bytes), info.Sha256);

        // The same bytes under another path and another run: stored once.
        await server.Client.UploadArtifactAsync(run, "copy/weights.bin", new MemoryStream(bytes));
        await server.Client.UploadArtifactAsync(other, "weights.bin", new MemoryStream(bytes));
        Assert.Equal(blobsBefore + 1, BlobFiles(server).Length);

        var viaGrpc = new MemoryStream();
        var downloaded = await server.Client.DownloadArtifactAsync(run, "model/weights.bin", viaGrpc);
        Assert.Equal(bytes, viaGrpc.ToArray());
        Assert.Equal(info.Sha256, downloaded.Sha256);

        var viaHttp = await server.Http.GetAsync($"/v1/runs/{run}/artifacts/model/weights.bin");
        Assert.Equal(HttpStatusCode.OK, viaHttp.StatusCode);
        Assert.Equal(bytes, await viaHttp.Content.ReadAsByteArrayAsync());
        Assert.Equal(info.Sha256, viaHttp.Headers.GetValues("X-MetricStore-Sha256").Single());
        Assert.Equal($"\"{info.Sha256}\"", viaHttp.Headers.ETag?.Tag);

        // A range, for resuming a download.
        using var range = new HttpRequestMessage(HttpMethod.Get, $"/v1/runs/{run}/artifacts/model/weights.bin");
        range.Headers.Range = new RangeHeaderValue(1000, 1999);
        var partial = await server.Http.SendAsync(range);
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal(bytes[1000..2000], await partial.Content.ReadAsByteArrayAsync());

        var listed = await server.Client.ListArtifactsAsync(run);
        Assert.Equal(["copy/weights.bin", "model/weights.bin"], listed.Select(a => a.Path));
        var json = JsonDocument.Parse(await server.Http.GetStringAsync($"/v1/runs/{run}/artifacts?prefix=model")).RootElement.GetProperty("artifacts");
        Assert.Equal("model/weights.bin", json[0].GetProperty("path").GetString());
        Assert.Equal(bytes.Length, json[0].GetProperty("size").GetInt64());
        Assert.Equal(info.Sha256, json[0].GetProperty("sha256").GetString());
        Assert.Equal(1, json.GetArrayLength());
    }

    [Fact]
    public async Task Http_put_stores_the_body_and_checks_a_declared_sha256()
    {
        var server = fixture.Server;
        var run = await NewRunAsync(server);
        var bytes = RandomBytes(200_000, 2);

        using (var put = new HttpRequestMessage(HttpMethod.Put, $"/v1/runs/{run}/artifacts/data/train%20set.bin") { Content = new ByteArrayContent(bytes) })
        {
            put.Headers.Add("X-MetricStore-Sha256", Sha(bytes).ToUpperInvariant());
            var created = await server.Http.SendAsync(put);
            var body = await created.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var json = JsonDocument.Parse(body).RootElement;
            Assert.Equal("data/train set.bin", json.GetProperty("path").GetString());
            Assert.Equal(Sha(bytes), json.GetProperty("sha256").GetString());
        }

        // The same bytes again: 200, nothing new.
        var again = await server.Http.PutAsync($"/v1/runs/{run}/artifacts/data/train%20set.bin", new ByteArrayContent(bytes));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);

        using (var wrong = new HttpRequestMessage(HttpMethod.Put, $"/v1/runs/{run}/artifacts/data/other.bin") { Content = new ByteArrayContent(bytes) })
        {
            wrong.Headers.Add("X-MetricStore-Sha256", Sha([1, 2, 3]));
            var refused = await server.Http.SendAsync(wrong);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("sha256", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(["data/train set.bin"], (await server.Client.ListArtifactsAsync(run)).Select(a => a.Path));
        Assert.Equal(HttpStatusCode.NotFound, (await server.Http.GetAsync($"/v1/runs/{run}/artifacts/data/other.bin")).StatusCode);
    }

    [Fact]
    public async Task A_path_keeps_its_bytes_a_retry_is_a_no_op_and_other_bytes_are_refused()
    {
        var server = fixture.Server;
        var run = await NewRunAsync(server);
        var first = await server.Client.UploadArtifactAsync(run, "model.bin", new MemoryStream([1, 2, 3]));
        var retry = await server.Client.UploadArtifactAsync(run, "model.bin", new MemoryStream([1, 2, 3]));
        Assert.Equal(first, retry);

        var blobs = BlobFiles(server).Length;
        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.UploadArtifactAsync(run, "model.bin", new MemoryStream([9, 9, 9, 9])));
        Assert.Equal(StatusCode.AlreadyExists, error.StatusCode);
        Assert.Contains(first.Sha256, error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(blobs, BlobFiles(server).Length); // the refused bytes left no blob

        var stored = new MemoryStream();
        await server.Client.DownloadArtifactAsync(run, "model.bin", stored);
        Assert.Equal(new byte[] { 1, 2, 3 }, stored.ToArray());
    }

    [Fact]
    public async Task A_download_of_tampered_bytes_fails_and_leaves_no_file()
    {
        await using var server = await TestServer.StartAsync();
        using var local = new TempDirectory();
        var run = await NewRunAsync(server);
        var bytes = RandomBytes(300_000, 8);
        var info = await server.Client.UploadArtifactAsync(run, "model.bin", new MemoryStream(bytes));

        // Flip one byte of the stored blob, keeping its size: only the hash can tell.
        var blob = Path.Combine(server.DataDirectory, "artifacts", "blobs", info.Sha256[..2], info.Sha256);
        var stored = await File.ReadAllBytesAsync(blob);
        stored[150_000] ^= 0xFF;
        await File.WriteAllBytesAsync(blob, stored);

        var target = Path.Combine(local.Path, "model.bin");
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => server.Client.DownloadFileAsync(run, "model.bin", target));
        Assert.Contains(info.Sha256, error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(local.Path));
    }

    [Theory]
    [InlineData("../escape.bin", "'..'")]
    [InlineData("a/../../escape.bin", "'..'")]
    [InlineData("/etc/passwd", "absolute")]
    [InlineData("C:/windows/x.dll", "drive letter")]
    [InlineData("a\\..\\b", "backslash")]
    [InlineData("a\0b", "U+0000")]
    [InlineData("a//b", "empty segment")]
    [InlineData("dir/", "empty segment")]
    [InlineData("", "required")]
    [InlineData(".", "names no file")]
    public async Task Paths_that_escape_or_are_ambiguous_are_refused_naming_the_path(string path, string reason)
    {
        var server = fixture.Server;
        var run = await NewRunAsync(server);
        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.UploadArtifactAsync(run, path, new MemoryStream([1])));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(reason, error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("path", error.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(await server.Client.ListArtifactsAsync(run));
    }

    [Fact]
    public async Task Dot_segments_are_removed_and_names_are_otherwise_exact()
    {
        var server = fixture.Server;
        var run = await NewRunAsync(server);
        var dotted = await server.Client.UploadArtifactAsync(run, "./r\u00e9sum\u00e9/./a.txt", new MemoryStream([1])); // precomposed é
        Assert.Equal("r\u00e9sum\u00e9/a.txt", dotted.Path);
        var retry = await server.Client.UploadArtifactAsync(run, "r\u00e9sum\u00e9/a.txt", new MemoryStream([1]));
        Assert.Equal(dotted, retry);

        // No Unicode normalisation (as in git): a decomposed é is another path.
        var decomposed = await server.Client.UploadArtifactAsync(run, "re\u0301sume\u0301/a.txt", new MemoryStream([2]));
        Assert.Equal("re\u0301sume\u0301/a.txt", decomposed.Path);
        Assert.Equal(2, (await server.Client.ListArtifactsAsync(run)).Count);
    }

    [Fact]
    public async Task Listing_pages_and_directory_prefixes()
    {
        var server = fixture.Server;
        var run = await NewRunAsync(server);
        foreach (var path in new[] { "model", "model/a", "model/b/c", "model2/x", "modelx", "z|pipe" })
        {
            await server.Client.UploadArtifactAsync(run, path, new MemoryStream([1]));
        }

        var page1 = await server.Client.Artifacts.ListArtifactsAsync(new ListArtifactsRequest { RunId = run, PageSize = 4 });
        Assert.Equal(["model", "model/a", "model/b/c", "model2/x"], page1.Artifacts.Select(a => a.Path));
        var page2 = await server.Client.Artifacts.ListArtifactsAsync(new ListArtifactsRequest { RunId = run, PageSize = 4, PageToken = page1.NextPageToken });
        Assert.Equal(["modelx", "z|pipe"], page2.Artifacts.Select(a => a.Path));
        Assert.Empty(page2.NextPageToken);

        Assert.Equal(["model", "model/a", "model/b/c"], (await server.Client.ListArtifactsAsync(run, "model/")).Select(a => a.Path));
        Assert.Equal(["model/b/c"], (await server.Client.ListArtifactsAsync(run, "model/b")).Select(a => a.Path));

        var bad = await Assert.ThrowsAsync<RpcException>(() => server.Client.ListArtifactsAsync(run, "../x"));
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => server.Client.ListArtifactsAsync(new string('0', 32)));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task An_interrupted_upload_leaves_nothing_visible_and_no_bytes_behind()
    {
        var server = fixture.Server;
        var run = await NewRunAsync(server);
        using (var cancel = new CancellationTokenSource())
        {
            var call = server.Client.Artifacts.Upload(cancellationToken: cancel.Token);
            await call.RequestStream.WriteAsync(new UploadRequest { Header = new UploadHeader { RunId = run, Path = "big.bin" } });
            for (var i = 0; i < 4; i++)
            {
                await call.RequestStream.WriteAsync(new UploadRequest { Chunk = ByteString.CopyFrom(RandomBytes(1 << 20, i)) });
            }

            // Wait until the server has the partial file, then walk away mid-upload.
            await Eventually.Until(() => PartialFiles(server).Length > 0, "the upload to start writing");
            await cancel.CancelAsync();
            call.Dispose();
        }

        await Eventually.Until(() => PartialFiles(server).Length == 0, "the partial upload to be deleted");
        Assert.Empty(await server.Client.ListArtifactsAsync(run));
        var missing = await Assert.ThrowsAsync<RpcException>(() => server.Client.DownloadArtifactAsync(run, "big.bin", Stream.Null));
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Bytes_that_do_not_match_their_declared_size_or_hash_are_refused_and_leave_no_blob()
    {
        var server = fixture.Server;
        var run = await NewRunAsync(server);
        var bytes = RandomBytes(100_000, 3);
        var blobs = BlobFiles(server).Length;

        async Task<RpcException> Upload(UploadHeader header, UploadTrailer? trailer)
        {
            header.RunId = run;
            using var call = server.Client.Artifacts.Upload();
            try
            {
                await call.RequestStream.WriteAsync(new UploadRequest { Header = header });
                await call.RequestStream.WriteAsync(new UploadRequest { Chunk = ByteString.CopyFrom(bytes) });
                if (trailer is not null)
                {
                    await call.RequestStream.WriteAsync(new UploadRequest { Trailer = trailer });
                }

                await call.RequestStream.CompleteAsync();
            }
            catch (RpcException)
            {
                // The server answered before reading everything; its status is the response's.
            }

            return await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseAsync);
        }

        var header = await Upload(new UploadHeader { Path = "a.bin", Sha256 = Sha([1]) }, null);
        Assert.Equal(StatusCode.DataLoss, header.StatusCode);
        var trailer = await Upload(new UploadHeader { Path = "a.bin" }, new UploadTrailer { Sha256 = Sha([1]) });
        Assert.Equal(StatusCode.DataLoss, trailer.StatusCode);
        Assert.Contains("the sender hashed", trailer.Status.Detail, StringComparison.Ordinal);
        var shorter = await Upload(new UploadHeader { Path = "a.bin", Size = bytes.Length + 1 }, null);
        Assert.Equal(StatusCode.DataLoss, shorter.StatusCode);
        var longer = await Upload(new UploadHeader { Path = "a.bin", Size = bytes.Length - 1 }, null);
        Assert.Equal(StatusCode.DataLoss, longer.StatusCode);
        var badHash = await Upload(new UploadHeader { Path = "a.bin", Sha256 = "xyz" }, null);
        Assert.Equal(StatusCode.InvalidArgument, badHash.StatusCode);

        Assert.Empty(await server.Client.ListArtifactsAsync(run));
        Assert.Equal(blobs, BlobFiles(server).Length);
        await Eventually.Until(() => PartialFiles(server).Length == 0, "partial uploads to be deleted");
    }

    [Fact]
    public async Task Uploads_to_unknown_runs_or_without_a_header_are_refused()
    {
        var server = fixture.Server;
        var unknown = await Assert.ThrowsAsync<RpcException>(() => server.Client.UploadArtifactAsync(new string('a', 32), "x.bin", new MemoryStream([1])));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        var malformed = await Assert.ThrowsAsync<RpcException>(() => server.Client.UploadArtifactAsync("not-a-run", "x.bin", new MemoryStream([1])));
        Assert.Equal(StatusCode.InvalidArgument, malformed.StatusCode);

        using var call = server.Client.Artifacts.Upload();
        await call.RequestStream.WriteAsync(new UploadRequest { Chunk = ByteString.CopyFrom(1, 2) });
        await call.RequestStream.CompleteAsync();
        var headerless = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, headerless.StatusCode);
        Assert.Contains("header", headerless.Status.Detail, StringComparison.Ordinal);

        var http = await server.Http.PutAsync($"/v1/runs/{new string('b', 32)}/artifacts/x.bin", new ByteArrayContent([1]));
        Assert.Equal(HttpStatusCode.NotFound, http.StatusCode);
    }

    [Fact]
    public async Task The_size_limit_refuses_an_artifact_over_grpc_and_http_and_keeps_nothing()
    {
        await using var server = await TestServer.StartAsync(configure: o => o with { MaxArtifactBytes = 1 << 20 });
        var run = await NewRunAsync(server);
        var bytes = RandomBytes((1 << 20) + 1, 4);

        var grpc = await Assert.ThrowsAsync<RpcException>(() => server.Client.UploadArtifactAsync(run, "big.bin", new MemoryStream(bytes)));
        Assert.Equal(StatusCode.ResourceExhausted, grpc.StatusCode);
        Assert.Contains("1048576", grpc.Status.Detail, StringComparison.Ordinal);

        var http = await server.Http.PutAsync($"/v1/runs/{run}/artifacts/big.bin", new ByteArrayContent(bytes));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, http.StatusCode);

        // A streamed body without a length is cut when it passes the limit.
        var streamed = new StreamContent(new NonSeekableStream(bytes));
        var chunked = await server.Http.PutAsync($"/v1/runs/{run}/artifacts/big.bin", streamed);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, chunked.StatusCode);

        Assert.Empty(await server.Client.ListArtifactsAsync(run));
        Assert.Empty(BlobFiles(server));
        Assert.Equal(1 << 20, (await server.Client.UploadArtifactAsync(run, "fits.bin", new MemoryStream(bytes[..(1 << 20)]))).Size);
    }

    [Fact]
    public async Task A_restart_removes_partial_uploads_and_unrecorded_blobs_and_keeps_recorded_ones()
    {
        using var data = new TempDirectory();
        string run;
        ArtifactInfo kept;
        await using (var first = await TestServer.StartAsync(data.Path))
        {
            run = await NewRunAsync(first);
            kept = await first.Client.UploadArtifactAsync(run, "kept.bin", new MemoryStream(RandomBytes(5000, 5)));
        }

        // What a crash leaves: a partial upload, and a blob renamed into place whose record never committed.
        var root = Path.Combine(data.Path, "artifacts");
        await File.WriteAllBytesAsync(Path.Combine(root, "tmp", "crashed.upload"), RandomBytes(777, 6));
        var orphanBytes = RandomBytes(888, 7);
        var orphanSha = Sha(orphanBytes);
        Directory.CreateDirectory(Path.Combine(root, "blobs", orphanSha[..2]));
        await File.WriteAllBytesAsync(Path.Combine(root, "blobs", orphanSha[..2], orphanSha), orphanBytes);

        await using var second = await TestServer.StartAsync(data.Path);
        Assert.Empty(PartialFiles(second));
        Assert.Equal([kept.Sha256], BlobFiles(second).Select(Path.GetFileName));
        Assert.Contains(second.Warnings, w => w.Contains("1 interrupted uploads (777 bytes) and 1 unrecorded blobs (888 bytes)", StringComparison.Ordinal));
        var back = new MemoryStream();
        await second.Client.DownloadArtifactAsync(run, "kept.bin", back);
        Assert.Equal(kept.Size, back.Length);
    }

    /// <summary>A body whose length is unknown, as a pipe's would be (sent chunked).</summary>
    private sealed class NonSeekableStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();
    }
}
