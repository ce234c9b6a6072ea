using System.Text;

namespace MetricStore.Core;

/// <summary>
/// Identifies a series: (run, metric, labels). Labels are kept sorted by key so two keys with the
/// same labels in another order are equal; <see cref="Canonical"/> is the one string form.
/// </summary>
public sealed class SeriesKey : IEquatable<SeriesKey>
{
    public const int MaxMetricLength = 250;
    public const int MaxLabels = 8;
    public const int MaxLabelKeyLength = 64;
    public const int MaxLabelValueLength = 128;

    private SeriesKey(string runId, string metric, KeyValuePair<string, string>[] labels, string canonical)
    {
        RunId = runId;
        Metric = metric;
        Labels = labels;
        Canonical = canonical;
    }

    public string RunId { get; }

    public string Metric { get; }

    /// <summary>Sorted by key (ordinal).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Labels { get; }

    /// <summary>run '\u001f' metric ('\u001f' key '=' value)*: unique per key, used as the map key.</summary>
    public string Canonical { get; }

    /// <summary>Validates and builds a key; InvalidArgument naming <paramref name="field"/> when a part is bad.</summary>
    public static SeriesKey Create(string field, string runId, string metric, IEnumerable<KeyValuePair<string, string>>? labels = null)
    {
        Core.RunId.Check($"{field}.run_id", runId);
        Validate.Name($"{field}.metric", metric, MaxMetricLength);
        var sorted = labels is null ? [] : labels.ToArray();
        if (sorted.Length > MaxLabels)
        {
            MetricStoreException.InvalidArgument($"{field}.labels has {sorted.Length} labels; the limit is {MaxLabels}");
        }

        Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        var canonical = new StringBuilder(runId.Length + metric.Length + 2 + (sorted.Length * 16));
        canonical.Append(runId).Append('\u001f').Append(metric);
        foreach (var (key, value) in sorted)
        {
            Validate.Name($"{field}.labels key", key, MaxLabelKeyLength);
            Validate.Name($"{field}.labels['{key}']", value, MaxLabelValueLength);
            if (key.Contains('=', StringComparison.Ordinal))
            {
                MetricStoreException.InvalidArgument($"{field}.labels key {Validate.Quote(key)} contains '='");
            }

            canonical.Append('\u001f').Append(key).Append('=').Append(value);
        }

        return new SeriesKey(runId, metric, sorted, canonical.ToString());
    }

    /// <summary>Rebuilds a key from its canonical form (as stored in the WAL and manifest).</summary>
    public static SeriesKey FromCanonical(string canonical)
    {
        var parts = canonical.Split('\u001f');
        var labels = new KeyValuePair<string, string>[parts.Length - 2];
        for (var i = 2; i < parts.Length; i++)
        {
            var eq = parts[i].IndexOf('=', StringComparison.Ordinal);
            labels[i - 2] = new KeyValuePair<string, string>(parts[i][..eq], parts[i][(eq + 1)..]);
        }

        return new SeriesKey(parts[0], parts[1], labels, canonical);
    }

    public bool Equals(SeriesKey? other) => other is not null && string.Equals(Canonical, other.Canonical, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as SeriesKey);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Canonical);

    public override string ToString()
    {
        if (Labels.Count == 0)
        {
            return $"{RunId}/{Metric}";
        }

        return $"{RunId}/{Metric}{{{string.Join(',', Labels.Select(l => $"{l.Key}={l.Value}"))}}}";
    }
}
