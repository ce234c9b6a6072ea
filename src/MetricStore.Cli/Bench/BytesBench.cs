using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MetricStore.Storage.Segments;

namespace MetricStore.Cli.Bench;

internal sealed record BytesBenchOptions(int Points, string? Logs, bool Json);

/// <summary>
/// 'metricstore bench bytes': bytes per point on disk, written exactly as a seal writes them, for
/// the synthetic loss curve (float32-origin and full-precision float64 noise) and, with --logs, for
/// the real training curves in ../shared/data/training-logs (all series of one log in one file,
/// as a seal groups them). Reports the whole file and each column per point.
/// </summary>
internal static partial class BytesBench
{
    public static async Task<int> RunAsync(BytesBenchOptions o, TextWriter output, TextWriter progress, CancellationToken cancellationToken)
    {
        var temp = Directory.CreateTempSubdirectory("metricstore-bench-bytes-").FullName;
        try
        {
            var datasets = new List<(string Name, string Timestamps, List<(long[] Steps, double[] Values, long[] Timestamps)> Series, double? Entropy)>();
            var curve = IngestBench.NoisyLossCurve(o.Points, seed: 42);
            var steps = Enumerable.Range(0, o.Points).Select(i => (long)i).ToArray();
            var wall = steps.Select(s => 1_700_000_000_000 + (s / 10_000 * 1000)).ToArray(); // one timestamp per 10k-point request, as bench ingest sends
            var curve64 = IngestBench.NoisyLossCurve64(o.Points, seed: 42);
            datasets.Add(("synthetic loss, float32-origin noise", "per 10k-point request", [(steps, curve.Select(v => (double)v).ToArray(), wall)], CurveEntropy.BytesPerPoint(curve)));
            datasets.Add(("synthetic loss, float64 noise", "per 10k-point request", [(steps, curve64, wall)], CurveEntropy.BytesPerPoint(curve64)));
            if (o.Logs is not null)
            {
                // As parsed (decimal text, so doubles), and as a client that logs float32 stores them.
                foreach (var (name, timestamps, series) in RealCurves(o.Logs))
                {
                    datasets.Add((name, timestamps, series, null));
                    datasets.Add((name + " (as float32)", timestamps, series.ConvertAll(s => (s.Steps, s.Values.Select(v => (double)(float)v).ToArray(), s.Timestamps)), null));
                }
            }

            var results = new JsonArray();
            var verified = true;
            foreach (var (name, timestamps, series, entropy) in datasets)
            {
                var footprint = await SegmentFootprint.MeasureAsync(temp, series, cancellationToken);
                verified &= footprint.Verified;
                double PerPoint(long bytes) => Math.Round((double)bytes / footprint.Points, 3);
                var columns = new JsonObject();
                foreach (var (column, bytes) in footprint.ColumnBytes.OrderBy(c => c.Key, StringComparer.Ordinal))
                {
                    columns[column] = PerPoint(bytes);
                }

                results.Add(new JsonObject
                {
                    ["dataset"] = name,
                    ["series"] = series.Count,
                    ["points"] = footprint.Points,
                    ["value_type"] = footprint.ValueType,
                    ["timestamps"] = timestamps,
                    ["bytes_per_point"] = PerPoint(footprint.FileBytes),
                    ["column_bytes_per_point"] = columns,
                    // The generator's information content per value: no lossless encoding can go below it.
                    ["value_entropy_bytes_per_point"] = entropy is { } information ? Math.Round(information, 3) : null,
                    ["verified"] = footprint.Verified,
                });
                await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"{name,-52} {series.Count,4} series {footprint.Points,11:N0} points  {footprint.ValueType,-6} {PerPoint(footprint.FileBytes),7:F3} bytes/point  (value {PerPoint(footprint.ColumnBytes.GetValueOrDefault("value")):F3}, step {PerPoint(footprint.ColumnBytes.GetValueOrDefault("step")):F3}, timestamp {PerPoint(footprint.ColumnBytes.GetValueOrDefault("timestamp_ms")):F3}){(entropy is { } bound ? $"; the values carry {bound:F3} bytes of information each" : "")}"));
            }

            if (o.Json)
            {
                await output.WriteLineAsync(new JsonObject { ["datasets"] = results, ["verified"] = verified }.ToJsonString());
            }
            else
            {
                await output.WriteLineAsync(verified ? "verified: every row group read back exactly" : "NOT VERIFIED: a row group read back differently");
            }

            return verified ? 0 : 1;
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>
    /// The dense per-step LLM logs of the training-logs folder, parsed with the regexes its README
    /// gives; values as the logs print them (decimal text, so doubles).
    /// </summary>
    private static IEnumerable<(string Name, string Timestamps, List<(long[] Steps, double[] Values, long[] Timestamps)> Series)> RealCurves(string directory)
    {
        var llmc = Path.Combine(directory, "llmc-gpt2-124m-10Btok_main.log");
        if (File.Exists(llmc))
        {
            var rows = File.ReadLines(llmc).Select(l => LlmcLine().Match(l)).Where(m => m.Success && m.Groups[2].Value == "trl").ToList();
            var steps = rows.Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToArray();
            var none = new long[steps.Length]; // the log has no wall time
            yield return ("llm.c GPT-2 124M: train loss, lr, grad norm", "none in the log (constant)",
            [
                (steps, rows.Select(m => Number(m.Groups[3].Value)).ToArray(), none),
                (steps, rows.Select(m => Number(m.Groups[4].Value)).ToArray(), none),
                (steps, rows.Select(m => Number(m.Groups[5].Value)).ToArray(), none),
            ]);
        }

        foreach (var file in new[] { "modded-nanogpt-124m-muon-19073steps.log", "modded-nanogpt-1.5b-muon-20344steps.log" })
        {
            var path = Path.Combine(directory, file);
            if (!File.Exists(path))
            {
                continue;
            }

            var rows = File.ReadLines(path).Select(l => NanoGptLine().Match(l)).Where(m => m.Success && m.Groups[2].Value == "train_loss").ToList();
            var steps = rows.Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToArray();
            var time = rows.Select(m => long.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture)).ToArray();
            yield return ($"{Path.GetFileNameWithoutExtension(file)}: train loss", "train_time (real, ms)", [(steps, rows.Select(m => Number(m.Groups[3].Value)).ToArray(), time)]);
        }
    }

    private static double Number(string text) => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^s:(\d+) (trl|tel):(\S+)(?: lr:(\S+) norm:(\S+))?$")]
    private static partial Regex LlmcLine();

    [GeneratedRegex(@"^step:(\d+)/\d+ (train_loss|val_loss):(\S+) train_time:(\d+)ms step_avg:(\S+)ms")]
    private static partial Regex NanoGptLine();
}
