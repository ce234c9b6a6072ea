using MetricStore.Core;
using Microsoft.Data.Sqlite;

namespace MetricStore.Tracking;

/// <summary>An artifact of a run: its path there and the bytes it names (by sha256).</summary>
public sealed record ArtifactInfo(string RunId, string Path, long Size, string Sha256, long CreatedTimeMs);

/// <summary>The metadata half of artifacts (the bytes are in <see cref="Artifacts.ArtifactStore"/>).</summary>
public sealed partial class TrackingStore
{
    public const int MaxArtifactPageSize = 10_000;

    /// <summary>
    /// Records that <paramref name="path"/> of the run names the bytes with <paramref name="sha256"/>.
    /// A path keeps its bytes: the same bytes again return the stored record (a retried upload
    /// is a no-op); other bytes are AlreadyExists naming both hashes.
    /// </summary>
    internal (ArtifactInfo Info, bool Created) AddArtifact(string runId, string path, string sha256, long size) => Write((connection, tx) =>
    {
        RequireRun(connection, tx, runId, "run_id");
        if (ReadArtifact(connection, tx, runId, path) is { } existing)
        {
            if (existing.Sha256 != sha256 || existing.Size != size)
            {
                MetricStoreException.Throw(
                    ErrorCode.AlreadyExists,
                    $"artifact '{path}' of run '{runId}' already holds other bytes (sha256 {existing.Sha256}, {existing.Size} bytes; this upload is sha256 {sha256}, {size} bytes); artifacts are immutable, upload to a new path");
            }

            return (existing, false);
        }

        var info = new ArtifactInfo(runId, path, size, sha256, NowMs());
        using var insert = Command(connection, tx, "INSERT INTO artifacts (run_id, path, sha256, size, created_ms) VALUES ($r, $p, $s, $n, $t)");
        insert.Parameters.AddWithValue("$r", runId);
        insert.Parameters.AddWithValue("$p", path);
        insert.Parameters.AddWithValue("$s", sha256);
        insert.Parameters.AddWithValue("$n", size);
        insert.Parameters.AddWithValue("$t", info.CreatedTimeMs);
        insert.ExecuteNonQuery();
        return (info, true);
    });

    /// <summary>The artifact at a normalised path, or NotFound naming the run and path.</summary>
    public ArtifactInfo GetArtifact(string runId, string path)
    {
        RunId.Check("run_id", runId);
        var normalized = ArtifactPath.Normalize("path", path);
        return Read(connection =>
        {
            if (ReadArtifact(connection, null, runId, normalized) is { } info)
            {
                return info;
            }

            RequireRun(connection, null, runId, "run_id");
            throw new MetricStoreException(ErrorCode.NotFound, $"run '{runId}' has no artifact at path '{normalized}'");
        });
    }

    /// <summary>
    /// The artifacts of a run in path order (ordinal), optionally under a directory prefix, a
    /// page at a time (keyset on the path; default 1000, at most <see cref="MaxArtifactPageSize"/>).
    /// </summary>
    public Page<ArtifactInfo> ListArtifacts(string runId, string? prefix = null, int pageSize = 0, string? pageToken = null)
    {
        RunId.Check("run_id", runId);
        var normalizedPrefix = ArtifactPath.NormalizePrefix("prefix", prefix);
        if (pageSize < 0 || pageSize > MaxArtifactPageSize)
        {
            MetricStoreException.InvalidArgument($"page_size is {pageSize}; it must be between 1 and {MaxArtifactPageSize} (or 0 for the default of 1000)");
        }

        var size = pageSize == 0 ? 1000 : pageSize;
        var after = PageToken.Decode("page_token", pageToken, "artifacts")?.B;
        return Read(connection =>
        {
            RequireRun(connection, null, runId, "run_id");
            // Under "a": the path "a" itself and the range ["a/", "a0"), '0' being the character after '/'.
            using var select = Command(
                connection,
                null,
                "SELECT run_id, path, size, sha256, created_ms FROM artifacts WHERE run_id = $r" +
                (normalizedPrefix.Length > 0 ? " AND (path = $prefix OR (path >= $lo AND path < $hi))" : "") +
                (after is not null ? " AND path > $after" : "") +
                " ORDER BY path LIMIT $limit");
            select.Parameters.AddWithValue("$r", runId);
            if (normalizedPrefix.Length > 0)
            {
                select.Parameters.AddWithValue("$prefix", normalizedPrefix);
                select.Parameters.AddWithValue("$lo", normalizedPrefix + "/");
                select.Parameters.AddWithValue("$hi", normalizedPrefix + "0");
            }

            if (after is not null)
            {
                select.Parameters.AddWithValue("$after", after);
            }

            select.Parameters.AddWithValue("$limit", size + 1);
            var items = new List<ArtifactInfo>();
            using var reader = select.ExecuteReader();
            while (reader.Read())
            {
                items.Add(ReadArtifactRow(reader));
            }

            string? next = null;
            if (items.Count > size)
            {
                items.RemoveAt(items.Count - 1);
                next = PageToken.Encode("artifacts", 0, items[^1].Path);
            }

            return new Page<ArtifactInfo>(items, next);
        });
    }

    /// <summary>Whether any artifact names the bytes with this sha256.</summary>
    internal bool IsBlobReferenced(string sha256) => Read(connection =>
    {
        using var select = Command(connection, null, "SELECT 1 FROM artifacts WHERE sha256 = $s LIMIT 1");
        select.Parameters.AddWithValue("$s", sha256);
        return select.ExecuteScalar() is not null;
    });

    /// <summary>Every sha256 some artifact names.</summary>
    internal HashSet<string> ReferencedBlobs() => Read(connection =>
    {
        using var select = Command(connection, null, "SELECT DISTINCT sha256 FROM artifacts");
        using var reader = select.ExecuteReader();
        var set = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read())
        {
            set.Add(reader.GetString(0));
        }

        return set;
    });

    private static ArtifactInfo? ReadArtifact(SqliteConnection connection, SqliteTransaction? tx, string runId, string path)
    {
        using var select = Command(connection, tx, "SELECT run_id, path, size, sha256, created_ms FROM artifacts WHERE run_id = $r AND path = $p");
        select.Parameters.AddWithValue("$r", runId);
        select.Parameters.AddWithValue("$p", path);
        using var reader = select.ExecuteReader();
        return reader.Read() ? ReadArtifactRow(reader) : null;
    }

    private static ArtifactInfo ReadArtifactRow(SqliteDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetString(3), reader.GetInt64(4));
}
