using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using MetricStore.Core;

namespace MetricStore.Storage.Segments;

/// <summary>
/// The live segment set and the checkpoint that lets the WAL behind it go: <c>manifest/{n:D20}.json</c>,
/// the highest n wins. Written to a temp file, fsynced, renamed into place, directory fsynced: a crash
/// leaves either the old or the new manifest, never half of one.
/// </summary>
internal sealed class Manifest
{
    public int Version { get; init; } = 1;

    /// <summary>Manifest number (also in the file name).</summary>
    public long Number { get; init; }

    /// <summary>WAL segments below this number are fully covered by the segments listed here.</summary>
    public long WalStart { get; init; }

    /// <summary>Series id -> canonical key, for every series defined up to the checkpoint.</summary>
    public Dictionary<int, string> Series { get; init; } = [];

    /// <summary>Writer id -> highest durable seq at the checkpoint (exactly-once survives WAL truncation).</summary>
    public Dictionary<string, ulong> Writers { get; init; } = new(StringComparer.Ordinal);

    /// <summary>Live segment files, oldest first (later files win for the same step).</summary>
    public List<SegmentInfo> Segments { get; init; } = [];

    /// <summary>Series tables (series_id -> run_id, metric, labels) written with the segments.</summary>
    public List<string> SeriesTables { get; init; } = [];

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string FileName(long number) => number.ToString("D20", CultureInfo.InvariantCulture) + ".json";

    /// <summary>
    /// The newest manifest, or null when there is none (a fresh directory). Safe while a running
    /// server commits: a commit that replaces the listed file between the listing and the read
    /// (it deletes the older manifests) makes this list again and read the newer one.
    /// </summary>
    public static Manifest? LoadLatest(string directory)
    {
        for (var attempt = 1; ; attempt++)
        {
            if (!Directory.Exists(directory))
            {
                return null;
            }

            var latest = Directory.EnumerateFiles(directory, "*.json")
                .Select(Path.GetFileName)
                .Where(n => n is { Length: 25 } && long.TryParse(n.AsSpan(0, 20), NumberStyles.None, CultureInfo.InvariantCulture, out _))
                .Order(StringComparer.Ordinal)
                .LastOrDefault();
            if (latest is null)
            {
                return null;
            }

            var path = Path.Combine(directory, latest);
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(path);
            }
            catch (FileNotFoundException) when (attempt < 100)
            {
                continue; // replaced by a newer commit after the listing
            }

            try
            {
                return JsonSerializer.Deserialize<Manifest>(bytes, s_json)
                    ?? throw new IOException($"manifest {path} is empty");
            }
            catch (JsonException e)
            {
                throw new IOException($"manifest {path} is not valid JSON ({e.Message}); it is written by atomic rename, so this is damage from outside", e);
            }
        }
    }

    /// <summary>Writes this manifest atomically, then removes older manifests.</summary>
    public void Commit(string directory)
    {
        Directory.CreateDirectory(directory);
        var final = Path.Combine(directory, FileName(Number));
        var temp = final + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(file, this, s_json);
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, final, overwrite: true);
        DirectorySync.Sync(directory);
        foreach (var old in Directory.EnumerateFiles(directory))
        {
            var name = Path.GetFileName(old);
            if (!string.Equals(name, FileName(Number), StringComparison.Ordinal))
            {
                File.Delete(old);
            }
        }
    }
}

/// <summary>One Parquet file: which series it holds, in which row group, over which steps.</summary>
internal sealed class SegmentInfo
{
    public required string File { get; init; }

    public long Rows { get; init; }

    public long Bytes { get; init; }

    /// <summary>"float" or "double": the value column's type in this file.</summary>
    public required string ValueType { get; init; }

    public List<SegmentSeries> Series { get; init; } = [];
}

internal sealed class SegmentSeries
{
    [JsonPropertyName("id")]
    public int SeriesId { get; init; }

    public int RowGroup { get; init; }

    public long Rows { get; init; }

    public long MinStep { get; init; }

    public long MaxStep { get; init; }

    /// <summary>Kept in the file's footer, not in the manifest; set when written or loaded.</summary>
    [JsonIgnore]
    public Query.Rollup? Rollup { get; set; }
}
