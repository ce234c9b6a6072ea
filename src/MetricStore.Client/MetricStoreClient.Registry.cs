using MetricStore.Protocol.V1;

namespace MetricStore.Client;

/// <summary>The deployment side of the registry.</summary>
public sealed partial class MetricStoreClient
{
    /// <summary>
    /// Resolves "name@Stage" or "name@alias" and downloads the version's artifact into
    /// <paramref name="directory"/> under its file name, verified against the sha256 the
    /// registry recorded when the version was created. On a mismatch (or any failure) nothing is
    /// left in the directory and <see cref="InvalidDataException"/> (or the call's error) is thrown.
    /// </summary>
    public async Task<(ResolvedModel Model, string LocalFile)> PullModelAsync(string reference, string directory, CancellationToken cancellationToken = default)
    {
        var resolved = await Registry.ResolveAsync(new ResolveRequest { Reference = reference }, Call(cancellationToken));
        var version = resolved.Version;
        var target = Path.Combine(Path.GetFullPath(directory), version.ArtifactPath[(version.ArtifactPath.LastIndexOf('/') + 1)..]);
        var tmp = target + ".pull-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            var info = await DownloadFileAsync(version.SourceRunId, version.ArtifactPath, tmp, cancellationToken);
            if (info.Sha256 != resolved.ArtifactSha256)
            {
                throw new InvalidDataException(
                    $"{reference} is version {version.Version} with artifact sha256 {resolved.ArtifactSha256}, but the run's artifact '{version.ArtifactPath}' now has sha256 {info.Sha256}");
            }

            File.Move(tmp, target, overwrite: true);
            return (resolved, target);
        }
        finally
        {
            File.Delete(tmp);
        }
    }
}
