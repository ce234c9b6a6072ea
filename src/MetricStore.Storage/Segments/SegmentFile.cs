using System.IO.Compression;
using MetricStore.Core;
using MetricStore.Storage.Wal;
using Parquet;
using Parquet.Schema;

namespace MetricStore.Storage.Segments;

/// <summary>
/// A sealed segment: plain Parquet that DuckDB, Spark or pyarrow read without MetricStore.
/// Columns run_id, metric, labels (strings, dictionary-encoded), step and timestamp_ms (int64,
/// DELTA_BINARY_PACKED), value (float or double, BYTE_STREAM_SPLIT), zstd at the fastest level.
/// Rows are sorted by (series, step), one row group per series, so row-group statistics prune by
/// series and step range. A file holds float values only when every value in it is exactly a
/// float32; the sealer writes float32-exact series and the others to separate files.
/// </summary>
internal static class SegmentFile
{
    private static readonly DataField<string> s_runId = new("run_id");
    private static readonly DataField<string> s_metric = new("metric");
    private static readonly DataField<string> s_labels = new("labels");
    private static readonly DataField<long> s_step = new("step");
    private static readonly DataField<long> s_timestamp = new("timestamp_ms");
    private static readonly DataField<float> s_valueFloat = new("value");
    private static readonly DataField<double> s_valueDouble = new("value");

    /// <summary>True when every value survives a round trip through float32 (NaN counts as exact).</summary>
    public static bool IsFloat32Exact(ReadOnlySpan<double> values)
    {
        foreach (var v in values)
        {
            if ((double)(float)v != v && !double.IsNaN(v))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Labels as one readable string, "k1=v1,k2=v2" sorted by key ("" for none).</summary>
    public static string LabelsText(SeriesKey key) => string.Join(',', key.Labels.Select(l => $"{l.Key}={l.Value}"));

    /// <summary>Writes the series (each sorted by step, unique steps) to a new file at <paramref name="path"/>, durably.</summary>
    public static async Task<SegmentInfo> WriteAsync(string path, IReadOnlyList<(int Id, SeriesKey Key, SeriesColumns Points)> series, bool float32, CancellationToken cancellationToken)
    {
        var valueField = float32 ? (DataField)s_valueFloat : s_valueDouble;
        var schema = new ParquetSchema(s_runId, s_metric, s_labels, s_step, valueField, s_timestamp);
        var options = new ParquetOptions
        {
            CompressionMethod = CompressionMethod.Zstd,
            CompressionLevel = CompressionLevel.Fastest,
        };
        options.ColumnEncodingHints[s_step.Name] = EncodingHint.DeltaBinaryPacked;
        options.ColumnEncodingHints[s_timestamp.Name] = EncodingHint.DeltaBinaryPacked;
        options.ColumnEncodingHints[valueField.Name] = EncodingHint.ByteSplitStream;

        var info = new SegmentInfo { File = Path.GetFileName(path), ValueType = float32 ? "float" : "double" };
        var temp = path + ".tmp";
        await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
        {
            await using (var writer = await ParquetWriter.CreateAsync(schema, stream, options, cancellationToken: cancellationToken))
            {
                var rowGroup = 0;
                foreach (var (id, key, points) in series)
                {
                    var n = points.Count;
                    using var group = writer.CreateRowGroup();
                    await group.WriteAsync(s_runId, Repeat(key.RunId, n));
                    await group.WriteAsync(s_metric, Repeat(key.Metric, n));
                    await group.WriteAsync(s_labels, Repeat(LabelsText(key), n));
                    await group.WriteAsync(s_step, new ReadOnlyMemory<long>(points.Steps, 0, n), cancellationToken: cancellationToken);
                    if (float32)
                    {
                        var floats = new float[n];
                        for (var i = 0; i < n; i++)
                        {
                            floats[i] = (float)points.Values[i];
                        }

                        await group.WriteAsync(s_valueFloat, new ReadOnlyMemory<float>(floats), cancellationToken: cancellationToken);
                    }
                    else
                    {
                        await group.WriteAsync(s_valueDouble, new ReadOnlyMemory<double>(points.Values, 0, n), cancellationToken: cancellationToken);
                    }

                    await group.WriteAsync(s_timestamp, new ReadOnlyMemory<long>(points.Timestamps, 0, n), cancellationToken: cancellationToken);
                    info.Series.Add(new SegmentSeries { SeriesId = id, RowGroup = rowGroup++, Rows = n, MinStep = points.Steps[0], MaxStep = points.Steps[n - 1] });
                }
            }

            await stream.FlushAsync(cancellationToken);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: false);
        DirectorySync.Sync(Path.GetDirectoryName(path)!);
        return new SegmentInfo
        {
            File = info.File,
            ValueType = info.ValueType,
            Series = info.Series,
            Rows = info.Series.Sum(s => s.Rows),
            Bytes = new FileInfo(path).Length,
        };
    }

    /// <summary>Reads one series' row group (steps sorted and unique, as written).</summary>
    public static async Task<SeriesColumns> ReadAsync(string path, int rowGroup, bool float32, CancellationToken cancellationToken)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken);
        using var group = reader.OpenRowGroupReader(rowGroup);
        var n = (int)group.RowCount;
        var columns = new SeriesColumns(n);
        await group.ReadAsync(s_step, new Memory<long>(columns.Steps, 0, n), cancellationToken: cancellationToken);
        await group.ReadAsync(s_timestamp, new Memory<long>(columns.Timestamps, 0, n), cancellationToken: cancellationToken);
        if (float32)
        {
            var floats = new float[n];
            await group.ReadAsync(s_valueFloat, new Memory<float>(floats), cancellationToken: cancellationToken);
            for (var i = 0; i < n; i++)
            {
                columns.Values[i] = floats[i];
            }
        }
        else
        {
            await group.ReadAsync(s_valueDouble, new Memory<double>(columns.Values, 0, n), cancellationToken: cancellationToken);
        }

        columns.Count = n;
        return columns;
    }

    private static string[] Repeat(string value, int n)
    {
        var array = new string[n];
        Array.Fill(array, value);
        return array;
    }
}
