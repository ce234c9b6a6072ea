using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;
using MetricStore.Core;
using MetricStore.Storage.Query;
using Parquet;
using Parquet.Schema;

namespace MetricStore.Storage.Segments;

/// <summary>
/// Sealed segments: plain Parquet that DuckDB, Spark or pyarrow read without MetricStore, as a
/// small star schema. Point files (<c>-f</c> float values, <c>-d</c> double values) have columns
/// series_id (int32, PLAIN), step and timestamp_ms (int64, DELTA_BINARY_PACKED) and value (float or
/// double, BYTE_STREAM_SPLIT), zstd at the fastest level, sorted by (series, step) with a row
/// group per series (per million rows of a longer one) so row-group statistics prune by series and
/// step range, and each row group's rollup serialized between the last column chunk and the footer,
/// located by the footer's key-value metadata (<see cref="SegmentWriter.RollupBlockKey"/>). A series table
/// (<c>-s</c>) maps series_id to run_id, metric and labels. Keeping the strings out of the point
/// rows made sealing about ten times faster (Parquet.Net handles every repeated string) at no cost
/// in size. A point file holds float values only when every value in it is exactly a float32.
/// </summary>
internal static class SegmentFile
{
    // Parquet.Net binds a DataField to the schema it is built into, so every write builds its own
    // fields and every read uses the fields of the file's schema (a shared static field read fine
    // only in the process that had written with it: the SIGKILL test caught that).

    /// <summary>Labels as one readable string, "k1=v1,k2=v2" sorted by key ("" for none).</summary>
    public static string LabelsText(SeriesKey key) => string.Join(',', key.Labels.Select(l => $"{l.Key}={l.Value}"));

    /// <summary>Writes the series (each sorted by step, unique steps) to a new file at <paramref name="path"/>, durably.</summary>
    public static async Task<SegmentInfo> WriteAsync(string path, IReadOnlyList<(int Id, SeriesKey Key, SeriesColumns Points)> series, bool float32, CompressionMethod compression, CancellationToken cancellationToken)
    {
        await using var writer = await SegmentWriter.CreateAsync(path, float32, compression, cancellationToken);
        foreach (var (id, _, points) in series)
        {
            await writer.AddAsync(id, points, cancellationToken);
        }

        return await writer.CompleteAsync(cancellationToken);
    }

    /// <summary>Reads one series' row group (steps sorted and unique, as written).</summary>
    /// <param name="path">The point file.</param>
    /// <param name="rowGroup">The row group's index in the file.</param>
    /// <param name="float32">Whether the file stores values as float32.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <param name="into">Columns to read into when they are large enough (compaction reuses its buffers); new ones otherwise.</param>
    public static async Task<SeriesColumns> ReadAsync(string path, int rowGroup, bool float32, CancellationToken cancellationToken, SeriesColumns? into = null)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken);
        return await ReadAsync(reader, path, rowGroup, float32, cancellationToken, into);
    }

    /// <summary>One row group's points through a reader already open (<see cref="SegmentReaders"/>).</summary>
    public static async Task<SeriesColumns> ReadAsync(ParquetReader reader, string path, int rowGroup, bool float32, CancellationToken cancellationToken, SeriesColumns? into = null)
    {
        using var group = reader.OpenRowGroupReader(rowGroup);
        var n = (int)group.RowCount;
        var columns = into is not null && into.Steps.Length >= n ? into : new SeriesColumns(n);
        var fields = reader.Schema.DataFields;
        DataField Field(string name) => fields.FirstOrDefault(f => f.Name == name)
            ?? throw new IOException($"segment {path} has no column '{name}': not a MetricStore point file");
        await group.ReadAsync(Field("step"), new Memory<long>(columns.Steps, 0, n), cancellationToken: cancellationToken);
        await group.ReadAsync(Field("timestamp_ms"), new Memory<long>(columns.Timestamps, 0, n), cancellationToken: cancellationToken);
        if (float32)
        {
            // The floats land in the first half of the double column's memory and are widened in
            // place from the end: double i covers floats 2i and 2i+1, both already widened (or, for
            // i = 0, float 0 itself, read first), so no float is overwritten before it is read.
            using var floats = new FloatsInDoubles(columns.Values, n);
            await group.ReadAsync(Field("value"), floats.Memory, cancellationToken: cancellationToken);
            var read = floats.GetSpan();
            for (var i = n - 1; i >= 0; i--)
            {
                columns.Values[i] = read[i];
            }
        }
        else
        {
            await group.ReadAsync(Field("value"), new Memory<double>(columns.Values, 0, n), cancellationToken: cancellationToken);
        }

        columns.Count = n;
        return columns;
    }

    /// <summary>The first <c>count</c> floats' worth of a double array's memory, as Memory&lt;float&gt; (no copy).</summary>
    private sealed unsafe class FloatsInDoubles(double[] array, int count) : MemoryManager<float>
    {
        public override Span<float> GetSpan() => MemoryMarshal.Cast<double, float>(array.AsSpan(0, (count + 1) / 2))[..count];

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
            return new MemoryHandle((float*)handle.AddrOfPinnedObject() + elementIndex, handle, this);
        }

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }

    /// <summary>
    /// The rollups of a point file's row groups, from its footer; a file written before rollups
    /// existed gets them computed from its points.
    /// </summary>
    public static async Task<Dictionary<int, Rollup>> ReadRollupsAsync(string path, CancellationToken cancellationToken)
    {
        bool float32;
        int rowGroups;
        await using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken);
            try
            {
                if (reader.CustomMetadata.TryGetValue(SegmentWriter.RollupBlockKey, out var block))
                {
                    return Rollup.Deserialize(await ReadRollupBlockAsync(stream, block, cancellationToken));
                }

                if (reader.CustomMetadata.TryGetValue(SegmentWriter.RollupMetadataKey, out var encoded))
                {
                    return Rollup.Deserialize(Convert.FromBase64String(encoded)); // written before the tenth session
                }
            }
            catch (Exception e) when (e is FormatException or InvalidDataException or EndOfStreamException)
            {
                throw new IOException($"segment {path} has a damaged rollup ({e.Message})", e);
            }

            float32 = reader.Schema.DataFields.First(f => f.Name == "value").ClrType == typeof(float);
            rowGroups = reader.RowGroupCount;
        }

        var rollups = new Dictionary<int, Rollup>(rowGroups);
        for (var g = 0; g < rowGroups; g++)
        {
            var points = await ReadAsync(path, g, float32, cancellationToken);
            rollups[g] = Rollup.Build(points.Steps, points.Values, points.Timestamps, 0, points.Count, Rollup.Coarse);
        }

        return rollups;
    }

    /// <summary>The serialized rollups at "OFFSET:LENGTH" (<see cref="SegmentWriter.RollupBlockKey"/>), which must lie inside the file.</summary>
    private static async Task<byte[]> ReadRollupBlockAsync(FileStream stream, string block, CancellationToken cancellationToken)
    {
        var colon = block.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0
            || !long.TryParse(block.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var offset)
            || !int.TryParse(block.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var length)
            || offset + length > stream.Length)
        {
            throw new InvalidDataException($"rollup block \"{block}\" is not OFFSET:LENGTH inside the file's {stream.Length} bytes");
        }

        var bytes = new byte[length];
        var read = await RandomAccess.ReadAsync(stream.SafeFileHandle, bytes, offset, cancellationToken);
        if (read != length)
        {
            throw new EndOfStreamException($"rollup block \"{block}\": read {read} of {length} bytes");
        }

        return bytes;
    }

    /// <summary>Writes the series table: one row per series (series_id, run_id, metric, labels), durably.</summary>
    public static async Task<long> WriteSeriesTableAsync(string path, IReadOnlyList<(int Id, SeriesKey Key)> series, CancellationToken cancellationToken)
    {
        var seriesIdField = new DataField<int>("series_id");
        var runIdField = new DataField<string>("run_id");
        var metricField = new DataField<string>("metric");
        var labelsField = new DataField<string>("labels");
        var schema = new ParquetSchema(seriesIdField, runIdField, metricField, labelsField);
        var options = new ParquetOptions { CompressionMethod = CompressionMethod.Zstd, CompressionLevel = CompressionLevel.Fastest };
        var temp = path + ".tmp";
        await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
        {
            await using (var writer = await ParquetWriter.CreateAsync(schema, stream, options, cancellationToken: cancellationToken))
            {
                using var group = writer.CreateRowGroup();
                await group.WriteAsync(seriesIdField, new ReadOnlyMemory<int>(series.Select(s => s.Id).ToArray()), cancellationToken: cancellationToken);
                await group.WriteAsync(runIdField, series.Select(s => s.Key.RunId).ToArray());
                await group.WriteAsync(metricField, series.Select(s => s.Key.Metric).ToArray());
                await group.WriteAsync(labelsField, series.Select(s => LabelsText(s.Key)).ToArray());
            }

            await stream.FlushAsync(cancellationToken);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: false);
        DirectorySync.Sync(Path.GetDirectoryName(path)!);
        return new FileInfo(path).Length;
    }
}
