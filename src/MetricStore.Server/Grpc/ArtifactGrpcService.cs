using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using MetricStore.Core;
using MetricStore.Tracking;
using MetricStore.Tracking.Artifacts;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>ArtifactService: chunked upload and download of a run's files, stored by sha256.</summary>
internal sealed class ArtifactGrpcService(ArtifactStore artifacts) : V1.ArtifactService.ArtifactServiceBase
{
    /// <summary>The largest chunk an upload may send (the proto's contract).</summary>
    public const int MaxChunkBytes = 4 * 1024 * 1024;

    /// <summary>
    /// The chunk size of downloads: 64 KiB keeps each received message out of the client's large
    /// object heap (85 000 bytes), which 1 MiB chunks filled with gen-2 collections (bench
    /// artifacts: 64 KiB downloads 230-300 MiB/s, 1 MiB 130-190).
    /// </summary>
    public const int DownloadChunkBytes = 64 * 1024;

    private const int FileReadBytes = 1024 * 1024;

    public override async Task<V1.ArtifactInfo> Upload(IAsyncStreamReader<V1.UploadRequest> requestStream, ServerCallContext context)
    {
        var cancel = context.CancellationToken;
        if (!await NextAsync(requestStream, cancel))
        {
            MetricStoreException.InvalidArgument("the upload stream is empty; its first message must be a header (run_id, path)");
        }

        if (requestStream.Current.PartCase != V1.UploadRequest.PartOneofCase.Header)
        {
            MetricStoreException.InvalidArgument($"the first message of an upload must be a header, not {requestStream.Current.PartCase}");
        }

        var header = requestStream.Current.Header;
        await using var upload = artifacts.BeginUpload(header.RunId, header.Path, header.Size > 0 ? header.Size : -1, header.Sha256);
        var index = 0;
        string? trailerSha256 = null;
        while (await NextAsync(requestStream, cancel))
        {
            index++;
            var message = requestStream.Current;
            if (trailerSha256 is not null)
            {
                MetricStoreException.InvalidArgument($"message {index} of the upload of '{upload.Path}' follows the trailer, which must be the last message");
            }

            if (message.PartCase == V1.UploadRequest.PartOneofCase.Trailer)
            {
                trailerSha256 = ArtifactPath.NormalizeSha256("trailer.sha256", message.Trailer.Sha256);
                continue;
            }

            if (message.PartCase != V1.UploadRequest.PartOneofCase.Chunk)
            {
                MetricStoreException.InvalidArgument($"message {index} of the upload of '{upload.Path}' is a {message.PartCase}; only the first message is a header, the rest are chunks and an optional trailer");
            }

            if (message.Chunk.Length > MaxChunkBytes)
            {
                MetricStoreException.InvalidArgument($"chunk {index} of '{upload.Path}' is {message.Chunk.Length} bytes; a chunk is at most {MaxChunkBytes}");
            }

            await upload.WriteAsync(message.Chunk.Memory, cancel);
        }

        var (info, _) = await upload.CompleteAsync(trailerSha256, cancel);
        return ToWire(info);
    }

    /// <summary>The next message; a client that resets the stream mid-upload is CANCELLED, not a server error.</summary>
    private static async Task<bool> NextAsync(IAsyncStreamReader<V1.UploadRequest> requestStream, CancellationToken cancel)
    {
        try
        {
            return await requestStream.MoveNext(cancel);
        }
        catch (IOException e)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "the client reset the upload: " + e.Message));
        }
    }

    public override async Task Download(V1.DownloadRequest request, IServerStreamWriter<V1.DownloadResponse> responseStream, ServerCallContext context)
    {
        var cancel = context.CancellationToken;
        var info = artifacts.Get(request.RunId, request.Path);
        await using var file = artifacts.OpenRead(info);
        await responseStream.WriteAsync(new V1.DownloadResponse { Info = ToWire(info) }, cancel);
        var buffer = ArrayPool<byte>.Shared.Rent(FileReadBytes);
        try
        {
            int read;
            while ((read = await file.ReadAsync(buffer.AsMemory(0, FileReadBytes), cancel)) > 0)
            {
                for (var offset = 0; offset < read; offset += DownloadChunkBytes)
                {
                    // The message is serialised inside WriteAsync, so the buffer is free again after it.
                    var chunk = buffer.AsMemory(offset, Math.Min(DownloadChunkBytes, read - offset));
                    await responseStream.WriteAsync(new V1.DownloadResponse { Chunk = UnsafeByteOperations.UnsafeWrap(chunk) }, cancel);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public override Task<V1.ListArtifactsResponse> ListArtifacts(V1.ListArtifactsRequest request, ServerCallContext context)
    {
        var page = artifacts.Tracking.ListArtifacts(request.RunId, request.Prefix, request.PageSize, request.PageToken);
        var response = new V1.ListArtifactsResponse { NextPageToken = page.NextPageToken ?? "" };
        foreach (var info in page.Items)
        {
            response.Artifacts.Add(ToWire(info));
        }

        return Task.FromResult(response);
    }

    public static V1.ArtifactInfo ToWire(ArtifactInfo info) => new()
    {
        RunId = info.RunId,
        Path = info.Path,
        Size = info.Size,
        Sha256 = info.Sha256,
        CreatedTimeMs = info.CreatedTimeMs,
    };
}
