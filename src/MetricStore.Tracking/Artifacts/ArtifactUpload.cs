using System.Security.Cryptography;
using MetricStore.Core;

namespace MetricStore.Tracking.Artifacts;

/// <summary>
/// One upload in progress: bytes go to a temporary file and through sha256 as they arrive.
/// <see cref="CompleteAsync"/> makes the artifact visible; disposing without completing (the
/// client went away, a check failed) deletes the temporary file. Not thread-safe: one writer.
/// </summary>
public sealed class ArtifactUpload : IAsyncDisposable
{
    private readonly ArtifactStore _store;
    private readonly long _expectedSize;
    private readonly string? _expectedSha256;
    private readonly string _tmp;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private FileStream? _file;
    private long _writebackFrom;
    private bool _done;

    internal ArtifactUpload(ArtifactStore store, string runId, string path, long expectedSize, string? expectedSha256, string tmp)
    {
        _store = store;
        RunId = runId;
        Path = path;
        _expectedSize = expectedSize;
        _expectedSha256 = expectedSha256;
        _tmp = tmp;
    }

    public string RunId { get; }

    /// <summary>The normalised path the artifact will have.</summary>
    public string Path { get; }

    /// <summary>Bytes received so far.</summary>
    public long Length { get; private set; }

    /// <summary>Appends bytes. Passing the size limit (or the declared size) fails with ResourceExhausted / DataLoss.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        if (bytes.IsEmpty)
        {
            return;
        }

        var length = Length + bytes.Length;
        if (length > _store.MaxArtifactBytes)
        {
            MetricStoreException.Throw(ErrorCode.ResourceExhausted, $"artifact '{Path}' passed {_store.MaxArtifactBytes} bytes, the limit for one artifact; nothing was stored");
        }

        if (_expectedSize >= 0 && length > _expectedSize)
        {
            MetricStoreException.Throw(ErrorCode.DataLoss, $"artifact '{Path}' sent more than the {_expectedSize} bytes its size declared; nothing was stored");
        }

        _file ??= new FileStream(_tmp, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            Options = FileOptions.Asynchronous,
            BufferSize = 0,
            PreallocationSize = _expectedSize > 0 ? _expectedSize : 0,
        });
        _hash.AppendData(bytes.Span);
        await _file.WriteAsync(bytes, cancellationToken);
        Length = length;
        if (Length - _writebackFrom >= Writeback.Interval)
        {
            Writeback.Start(_file.SafeFileHandle, _writebackFrom, Length - _writebackFrom);
            _writebackFrom = Length;
        }
    }

    /// <summary>
    /// Checks the declared size and sha256 (from the start, and <paramref name="trailerSha256"/>
    /// from the end of the upload), makes the bytes durable and the artifact visible. Returns the
    /// artifact and whether it is new (false: the same bytes were already at this path).
    /// </summary>
    public async Task<(ArtifactInfo Info, bool Created)> CompleteAsync(string? trailerSha256 = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        if (_expectedSize >= 0 && Length != _expectedSize)
        {
            MetricStoreException.Throw(ErrorCode.DataLoss, $"artifact '{Path}' ended after {Length} bytes; its size declared {_expectedSize}; nothing was stored");
        }

        var sha256 = Convert.ToHexStringLower(_hash.GetHashAndReset());
        if (_expectedSha256 is not null && _expectedSha256 != sha256)
        {
            MetricStoreException.Throw(ErrorCode.DataLoss, $"artifact '{Path}' has sha256 {sha256}; the upload declared {_expectedSha256}; nothing was stored");
        }

        if (trailerSha256 is not null && trailerSha256 != sha256)
        {
            MetricStoreException.Throw(ErrorCode.DataLoss, $"artifact '{Path}' arrived with sha256 {sha256}; the sender hashed {trailerSha256}; nothing was stored");
        }

        if (_file is null)
        {
            // An empty artifact: still one (empty) blob, so every artifact has a file.
            _file = new FileStream(_tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        }

        await _file.FlushAsync(cancellationToken);
        _file.Flush(flushToDisk: true);
        await _file.DisposeAsync();
        _file = null;
        var result = await _store.CommitAsync(RunId, Path, _tmp, sha256, Length, cancellationToken);
        _done = true;
        return result;
    }

    public async ValueTask DisposeAsync()
    {
        if (_file is not null)
        {
            await _file.DisposeAsync();
            _file = null;
        }

        _hash.Dispose();
        if (!_done)
        {
            _done = true;
            _store.Discard(_tmp);
        }
    }
}
