using MetricStore.Core;

namespace MetricStore.Tracking.Artifacts;

/// <summary>What <see cref="ArtifactStore.Sweep"/> removed.</summary>
public sealed record SweepReport(int PartialUploads, long PartialBytes, int OrphanBlobs, long OrphanBytes);

/// <summary>
/// The bytes of artifacts, stored once by content under <c>artifacts/blobs/xx/&lt;sha256&gt;</c>
/// in the data directory; which run and path name them is in the tracking store.
/// <para>
/// An upload streams into <c>artifacts/tmp</c> while it is hashed, is fsynced, then renamed to
/// its blob (or dropped when the blob exists) and recorded in one transaction. Nothing is
/// visible before that record; an abandoned upload deletes its file at once, and a crash leaves
/// at most a temporary file or an unrecorded blob, which <see cref="Sweep"/> removes at start.
/// </para>
/// </summary>
public sealed class ArtifactStore
{
    /// <summary>The default limit on one artifact: 64 GiB.</summary>
    public const long DefaultMaxArtifactBytes = 64L << 30;

    // Serialises "blob appears + row recorded" against "unrecorded blob removed", so a blob is
    // never deleted between the rename that creates it and the row that references it.
    private readonly SemaphoreSlim _commit = new(1, 1);
    private readonly string _blobs;
    private readonly string _tmp;

    private ArtifactStore(TrackingStore tracking, string root, long maxArtifactBytes)
    {
        Tracking = tracking;
        Root = root;
        MaxArtifactBytes = maxArtifactBytes;
        _blobs = Path.Combine(root, "blobs");
        _tmp = Path.Combine(root, "tmp");
    }

    public TrackingStore Tracking { get; }

    /// <summary>The directory holding blobs and partial uploads.</summary>
    public string Root { get; }

    public long MaxArtifactBytes { get; }

    /// <summary>
    /// Opens the artifact store of <paramref name="tracking"/>'s data directory and sweeps what
    /// a crash may have left (partial uploads, unrecorded blobs). Call before serving requests.
    /// </summary>
    public static ArtifactStore Open(TrackingStore tracking, long maxArtifactBytes = DefaultMaxArtifactBytes)
    {
        ArgumentNullException.ThrowIfNull(tracking);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxArtifactBytes);
        var store = new ArtifactStore(tracking, Path.Combine(tracking.Options.DataDirectory, "artifacts"), maxArtifactBytes);
        Directory.CreateDirectory(store._blobs);
        Directory.CreateDirectory(store._tmp);
        store.LastSweep = store.Sweep(includePartialUploads: true);
        return store;
    }

    /// <summary>What the sweep at open removed.</summary>
    public SweepReport LastSweep { get; private set; } = new(0, 0, 0, 0);

    /// <summary>
    /// Starts an upload to <paramref name="path"/> of the run. Checks the run, the path and the
    /// declared size now, so a refused upload sends no bytes. <paramref name="expectedSize"/>
    /// and <paramref name="expectedSha256"/> are optional (negative / null = unknown); when given,
    /// bytes that do not match fail the upload with DataLoss.
    /// </summary>
    public ArtifactUpload BeginUpload(string runId, string path, long expectedSize = -1, string? expectedSha256 = null)
    {
        RunId.Check("run_id", runId);
        var normalized = ArtifactPath.Normalize("path", path);
        if (expectedSize > MaxArtifactBytes)
        {
            MetricStoreException.Throw(ErrorCode.ResourceExhausted, $"size is {expectedSize} bytes; one artifact is at most {MaxArtifactBytes} bytes");
        }

        var sha = string.IsNullOrEmpty(expectedSha256) ? null : ArtifactPath.NormalizeSha256("sha256", expectedSha256);
        if (!Tracking.RunExists(runId))
        {
            MetricStoreException.NotFound($"run_id '{runId}' names a run that does not exist");
        }

        var tmp = Path.Combine(_tmp, Guid.NewGuid().ToString("N") + ".upload");
        return new ArtifactUpload(this, runId, normalized, expectedSize, sha, tmp);
    }

    /// <summary>The artifact's record, or NotFound.</summary>
    public ArtifactInfo Get(string runId, string path) => Tracking.GetArtifact(runId, path);

    /// <summary>The file holding the bytes of <paramref name="sha256"/> (read-only; never modify it).</summary>
    public string BlobPath(string sha256) => Path.Combine(_blobs, sha256[..2], sha256);

    /// <summary>Opens the bytes of an artifact for reading (sequential, asynchronous).</summary>
    public FileStream OpenRead(ArtifactInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        return new FileStream(BlobPath(info.Sha256), new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Read,
            Share = FileShare.Read | FileShare.Delete,
            Options = FileOptions.Asynchronous | FileOptions.SequentialScan,
            BufferSize = 0,
        });
    }

    /// <summary>
    /// Removes blobs no artifact records and, when <paramref name="includePartialUploads"/>
    /// (only safe when no upload is running, i.e. at open), every partial upload.
    /// </summary>
    public SweepReport Sweep(bool includePartialUploads = false)
    {
        int partial = 0, orphans = 0;
        long partialBytes = 0, orphanBytes = 0;
        if (includePartialUploads)
        {
            foreach (var file in new DirectoryInfo(_tmp).EnumerateFiles())
            {
                partialBytes += file.Length;
                file.Delete();
                partial++;
            }
        }

        _commit.Wait();
        try
        {
            var referenced = Tracking.ReferencedBlobs();
            foreach (var file in new DirectoryInfo(_blobs).EnumerateFiles("*", SearchOption.AllDirectories))
            {
                if (!referenced.Contains(file.Name))
                {
                    orphanBytes += file.Length;
                    file.Delete();
                    orphans++;
                }
            }
        }
        finally
        {
            _commit.Release();
        }

        return new SweepReport(partial, partialBytes, orphans, orphanBytes);
    }

    /// <summary>Moves a finished, fsynced upload to its blob and records it; see <see cref="ArtifactUpload.CompleteAsync"/>.</summary>
    internal async Task<(ArtifactInfo Info, bool Created)> CommitAsync(string runId, string path, string tmp, string sha256, long size, CancellationToken cancellationToken)
    {
        var blob = BlobPath(sha256);
        await _commit.WaitAsync(cancellationToken);
        try
        {
            var createdBlob = false;
            if (File.Exists(blob))
            {
                File.Delete(tmp);
            }
            else
            {
                var directory = Path.GetDirectoryName(blob)!;
                Directory.CreateDirectory(directory);
                File.Move(tmp, blob);
                createdBlob = true;
                DirectorySync.Sync(directory);
            }

            try
            {
                return Tracking.AddArtifact(runId, path, sha256, size);
            }
            catch when (createdBlob)
            {
                // The record was refused (the path holds other bytes, the run went away): leave no orphan.
                if (!Tracking.IsBlobReferenced(sha256))
                {
                    File.Delete(blob);
                }

                throw;
            }
        }
        finally
        {
            _commit.Release();
        }
    }

    internal void Discard(string tmp)
    {
        try
        {
            File.Delete(tmp);
        }
        catch (IOException)
        {
            // Swept at the next start.
        }
    }
}
