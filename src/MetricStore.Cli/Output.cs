using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace MetricStore.Cli;

/// <summary>
/// Printing for people (aligned tables) and for machines (JSON). Machine JSON is the HTTP API's
/// proto3 JSON of the object, with an "id" property first so every created object carries its id.
/// </summary>
internal static class Output
{
    private static readonly JsonFormatter s_formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    public static JsonObject ToJson(IMessage message, JsonNode id)
    {
        var node = JsonNode.Parse(s_formatter.Format(message))!.AsObject();
        Int64AsNumbers(message.Descriptor, node);
        var result = new JsonObject { ["id"] = id };
        foreach (var (key, value) in node.ToArray())
        {
            node.Remove(key);
            result[key] = value;
        }

        return result;
    }

    /// <summary>
    /// proto3 JSON writes 64-bit integers as strings; the HTTP API writes numbers (ids, steps and
    /// epoch milliseconds fit a double exactly), and the CLI matches the HTTP API.
    /// </summary>
    private static void Int64AsNumbers(MessageDescriptor descriptor, JsonObject node)
    {
        foreach (var field in descriptor.Fields.InFieldNumberOrder())
        {
            if (!node.TryGetPropertyValue(field.JsonName, out var value) || value is null || field.IsMap)
            {
                continue;
            }

            switch (field.FieldType)
            {
                case FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 when !field.IsRepeated:
                    node[field.JsonName] = long.Parse(value.GetValue<string>(), CultureInfo.InvariantCulture);
                    break;
                case FieldType.UInt64 or FieldType.Fixed64 when !field.IsRepeated:
                    node[field.JsonName] = ulong.Parse(value.GetValue<string>(), CultureInfo.InvariantCulture);
                    break;
                case FieldType.Message when !field.IsRepeated && value is JsonObject child:
                    Int64AsNumbers(field.MessageType, child);
                    break;
            }
        }
    }

    public static void WriteJson(TextWriter writer, JsonNode node) => writer.WriteLine(node.ToJsonString());

    /// <summary>Writes a listing as one JSON array of objects, each with its "id" first.</summary>
    public static void WriteJsonArray<T>(TextWriter writer, IEnumerable<T> items, Func<T, JsonNode> id)
        where T : IMessage
    {
        var array = new JsonArray();
        foreach (var item in items)
        {
            array.Add(ToJson(item, id(item)));
        }

        WriteJson(writer, array);
    }

    /// <summary>Writes rows as columns padded to the widest cell (cells cut at <paramref name="maxCell"/> characters).</summary>
    public static void WriteTable(TextWriter writer, string[] header, IEnumerable<string[]> rows, int maxCell = 60)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows.Select(r => r.Select(c => c.Length > maxCell ? string.Concat(c.AsSpan(0, maxCell - 1), "…") : c).ToArray()));
        var widths = new int[header.Length];
        foreach (var row in all)
        {
            for (var i = 0; i < row.Length; i++)
            {
                widths[i] = Math.Max(widths[i], row[i].Length);
            }
        }

        var line = new StringBuilder();
        foreach (var row in all)
        {
            line.Clear();
            for (var i = 0; i < row.Length; i++)
            {
                line.Append(i == row.Length - 1 ? row[i] : row[i].PadRight(widths[i] + 2));
            }

            writer.WriteLine(line.ToString().TrimEnd());
        }
    }

    public static string Time(long unixMs) => unixMs <= 0
        ? "-"
        : DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static string Duration(long startMs, long endMs)
    {
        if (endMs <= 0)
        {
            return "-";
        }

        var span = TimeSpan.FromMilliseconds(endMs - startMs);
        return span.TotalHours >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalHours}h{span.Minutes:00}m")
            : span.TotalMinutes >= 1
                ? string.Create(CultureInfo.InvariantCulture, $"{span.Minutes}m{span.Seconds:00}s")
                : string.Create(CultureInfo.InvariantCulture, $"{span.TotalSeconds:0.0}s");
    }

    /// <summary>Parses repeated KEY=VALUE options (split at the first '=').</summary>
    public static Dictionary<string, string> KeyValues(string option, string[]? items)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in items ?? [])
        {
            var eq = item.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new UsageException($"{option} '{item}' is not KEY=VALUE");
            }

            var key = item[..eq];
            var value = item[(eq + 1)..];
            if (result.TryGetValue(key, out var earlier) && earlier != value)
            {
                throw new UsageException($"{option} gives '{key}' twice, as '{earlier}' and as '{value}'");
            }

            result[key] = value;
        }

        return result;
    }
}
