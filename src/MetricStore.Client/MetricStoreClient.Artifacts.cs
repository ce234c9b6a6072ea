using System.Buffers;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using MetricStore.Core;
using MetricStore.Protocol.V1;

namespace MetricStore.Client;

/// <summary>
/// Artifact transfers. Every transfer is verified end to end by sha256: an upload sends the hash
/// of what it read as its last message (the server refuses the upload, storing nothing, when
/// the bytes it received differ); a download hashes what it receives and refuses bytes that do
/// not match the artifact's sha256. Transfers have no deadline; cancel them with the token.
/// </summary>
public sealed partial class MetricStoreClient
{
    /// <summary>
    /// Chunk size of uploads (the server accepts up to 4 MiB). 64 KiB keeps each message the
    /// server receives out of its large object heap; see ArtifactGrpcService.DownloadChunkBytes.
    /// </summary>
    public const int UploadChunkBytes = 64 * 1024;

    private const int FileReadBytes = 1024 * 1024;

    /// <summary>
    /// Uploads the rest of <paramref name="content"/> to <paramref name="path"/> of the run. The
    /// same bytes to the same path again return the stored artifact; other bytes are AlreadyExists.
    /// </summary>
    public async Task<ArtifactInfo> UploadArtifactAsync(string runId, string path, Stream content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        var size = content.CanSeek ? content.Length - content.Position : -1;
        using var call = Artifacts.Upload(cancellationToken: cancellationToken);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(FileReadBytes);
        string sha256;
        try
        {
            await call.RequestStream.WriteAsync(new UploadRequest { Header = new UploadHeader { RunId = runId, Path = path, Size = size } }, cancellationToken);
            int read;
            while ((read = await ReadFullAsync(content, buffer.AsMemory(0, FileReadBytes), cancellationToken)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                for (var offset = 0; offset < read; offset += UploadChunkBytes)
                {
                    // The message is serialised inside WriteAsync, so the buffer is free again after it.
                    var chunk = buffer.AsMemory(offset, Math.Min(UploadChunkBytes, read - offset));
                    await call.RequestStream.WriteAsync(new UploadRequest { Chunk = UnsafeByteOperations.UnsafeWrap(chunk) }, cancellationToken);
                }
            }

            sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
            await call.RequestStream.WriteAsync(new UploadRequest { Trailer = new UploadTrailer { Sha256 = sha256 } }, cancellationToken);
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException) when (!cancellationToken.IsCancellationRequested)
        {
            // The server refused the upload before reading all of it (a bad path, an unknown run,
            // the size limit): its status, in the response, says why. Awaiting it throws that.
            await call.ResponseAsync;
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var info = await call.ResponseAsync;
        if (info.Sha256 != sha256)
        {
            throw new InvalidDataException($"the server stored '{info.Path}' with sha256 {info.Sha256}, but {sha256} was sent");
        }

        return info;
    }

    /// <summary>Uploads a local file; <paramref name="path"/> defaults to the file's name.</summary>
    public async Task<ArtifactInfo> UploadFileAsync(string runId, string localFile, string? path = null, CancellationToken cancellationToken = default)
    {
        await using var file = new FileStream(localFile, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return await UploadArtifactAsync(runId, path ?? Path.GetFileName(localFile), file, cancellationToken);
    }

    /// <summary>
    /// Uploads every file under <paramref name="localDirectory"/> (recursively, in path order)
    /// to <paramref name="pathPrefix"/>/relative path. Symbolic links to directories are not followed.
    /// </summary>
    public async Task<IReadOnlyList<ArtifactInfo>> UploadDirectoryAsync(string runId, string localDirectory, string? pathPrefix = null, CancellationToken cancellationToken = default)
    {
        var root = Path.GetFullPath(localDirectory);
        var files = new DirectoryInfo(root)
            .EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = false })
            .Select(f => f.FullName)
            .Order(StringComparer.Ordinal)
            .ToList();
        var uploaded = new List<ArtifactInfo>(files.Count);
        foreach (var file in files)
        {
            var relative = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
            var path = string.IsNullOrEmpty(pathPrefix) ? relative : pathPrefix.TrimEnd('/') + "/" + relative;
            uploaded.Add(await UploadFileAsync(runId, file, path, cancellationToken));
        }

        return uploaded;
    }

    /// <summary>
    /// Writes the artifact's bytes to <paramref name="destination"/>, checking them against its
    /// sha256 as they arrive. A mismatch throws <see cref="InvalidDataException"/> (the bytes
    /// already written are not trustworthy: <see cref="DownloadFileAsync"/> removes them).
    /// </summary>
    public async Task<ArtifactInfo> DownloadArtifactAsync(string runId, string path, Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        using var call = Artifacts.Download(new DownloadRequest { RunId = runId, Path = path }, cancellationToken: cancellationToken);
        if (!await call.ResponseStream.MoveNext(cancellationToken) || call.ResponseStream.Current.PartCase != DownloadResponse.PartOneofCase.Info)
        {
            throw new InvalidDataException($"the download of '{path}' did not start with the artifact's info");
        }

        var info = call.ResponseStream.Current.Info;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long received = 0, writebackFrom = 0;
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            var chunk = call.ResponseStream.Current.Chunk.Memory;
            received += chunk.Length;
            if (received > info.Size)
            {
                throw new InvalidDataException($"artifact '{info.Path}' sent more than its {info.Size} bytes");
            }

            hash.AppendData(chunk.Span);
            await destination.WriteAsync(chunk, cancellationToken);
            if (destination is FileStream file && received - writebackFrom >= Writeback.Interval)
            {
                // Overlap the disk writes with the transfer instead of doing them all in the final fsync.
                await file.FlushAsync(cancellationToken);
                Writeback.Start(file.SafeFileHandle, writebackFrom, received - writebackFrom);
                writebackFrom = received;
            }
        }

        var sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (received != info.Size || sha256 != info.Sha256)
        {
            throw new InvalidDataException(
                $"artifact '{info.Path}' of run {info.RunId} arrived as {received} bytes with sha256 {sha256}; it is {info.Size} bytes with sha256 {info.Sha256}");
        }

        return info;
    }

    /// <summary>
    /// Downloads the artifact to <paramref name="localFile"/>: into a temporary file next to it,
    /// verified, then renamed over it. On any failure nothing is left at <paramref name="localFile"/>
    /// (an existing file there stays as it was).
    /// </summary>
    public async Task<ArtifactInfo> DownloadFileAsync(string runId, string path, string localFile, CancellationToken cancellationToken = default)
    {
        var full = Path.GetFullPath(localFile);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + "." + Guid.NewGuid().ToString("N")[..8] + ".partial";
        try
        {
            ArtifactInfo info;
            await using (var file = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
            {
                info = await DownloadArtifactAsync(runId, path, file, cancellationToken);
                file.Flush(flushToDisk: true);
            }

            File.Move(tmp, full, overwrite: true);
            return info;
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    /// <summary>
    /// Downloads every artifact under <paramref name="prefix"/> into <paramref name="localDirectory"/>,
    /// keeping paths relative to the prefix (an artifact at the prefix itself keeps its file name),
    /// and returns each with the file it was written to. Paths are checked again here, so a path
    /// can never name a file outside the directory.
    /// </summary>
    public async Task<IReadOnlyList<(ArtifactInfo Info, string LocalFile)>> DownloadDirectoryAsync(string runId, string prefix, string localDirectory, CancellationToken cancellationToken = default)
    {
        var root = Path.GetFullPath(localDirectory);
        var normalizedPrefix = ArtifactPath.NormalizePrefix("prefix", prefix);
        var done = new List<(ArtifactInfo, string)>();
        foreach (var info in await ListArtifactsAsync(runId, normalizedPrefix, cancellationToken))
        {
            var path = ArtifactPath.Normalize("path", info.Path);
            var relative = normalizedPrefix.Length == 0 ? path
                : path == normalizedPrefix ? path[(path.LastIndexOf('/') + 1)..]
                : path[(normalizedPrefix.Length + 1)..];
            var target = Path.GetFullPath(Path.Combine(root, relative.Replace('/', Path.DirectorySeparatorChar)));
            if (!target.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"artifact path '{info.Path}' would be written outside '{root}'");
            }

            done.Add((await DownloadFileAsync(runId, path, target, cancellationToken), target));
        }

        return done;
    }

    /// <summary>The artifacts of a run (under a directory prefix), in path order, following pages.</summary>
    public async Task<IReadOnlyList<ArtifactInfo>> ListArtifactsAsync(string runId, string? prefix = null, CancellationToken cancellationToken = default)
    {
        var all = new List<ArtifactInfo>();
        var token = "";
        do
        {
            var page = await Artifacts.ListArtifactsAsync(
                new ListArtifactsRequest { RunId = runId, Prefix = prefix ?? "", PageSize = 10_000, PageToken = token }, Call(cancellationToken));
            all.AddRange(page.Artifacts);
            token = page.NextPageToken;
        }
        while (token.Length > 0);
        return all;
    }

    private static async ValueTask<int> ReadFullAsync(Stream stream, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer[total..], cancellationToken);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }
}
