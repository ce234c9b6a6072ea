using System.Runtime.InteropServices;
using Parquet;

namespace MetricStore.Storage.Segments;

/// <summary>What a set of series costs on disk when sealed together into one point file.</summary>
/// <param name="Points">Points written.</param>
/// <param name="FileBytes">The whole file: every column, page headers, footer and rollups.</param>
/// <param name="ColumnBytes">Compressed bytes of each column chunk, summed over row groups, by column name.</param>
/// <param name="ValueType">"float" when every value round-trips through float32 (stored as 4-byte floats), else "double".</param>
/// <param name="Verified">Every row group read back equal to what was written (steps, values bit for bit, timestamps).</param>
public sealed record SegmentFootprint(long Points, long FileBytes, IReadOnlyDictionary<string, long> ColumnBytes, string ValueType, bool Verified)
{
    /// <summary>
    /// Writes the series exactly as a seal does (same writer, encodings, codec and rollups) into a
    /// point file in <paramref name="directory"/>, measures it from its footer and deletes it.
    /// </summary>
    /// <param name="directory">An existing directory for the temporary file.</param>
    /// <param name="series">Each series sorted by step with unique steps.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    public static async Task<SegmentFootprint> MeasureAsync(string directory, IReadOnlyList<(long[] Steps, double[] Values, long[] Timestamps)> series, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(series);
        var float32 = series.All(s => ColumnKernels.IsFloat32Exact(s.Values));
        var path = Path.Combine(directory, $"footprint-{Guid.NewGuid():N}.parquet");
        try
        {
            SegmentInfo info;
            await using (var writer = await SegmentWriter.CreateAsync(path, float32, CompressionMethod.Zstd, cancellationToken))
            {
                for (var i = 0; i < series.Count; i++)
                {
                    var (steps, values, timestamps) = series[i];
                    if (steps.Length != values.Length || steps.Length != timestamps.Length || steps.Length == 0)
                    {
                        throw new ArgumentException($"series {i}: {steps.Length} steps, {values.Length} values, {timestamps.Length} timestamps; they must be equal and not 0", nameof(series));
                    }

                    var columns = new SeriesColumns(steps.Length) { Count = steps.Length };
                    steps.CopyTo(columns.Steps, 0);
                    values.CopyTo(columns.Values, 0);
                    timestamps.CopyTo(columns.Timestamps, 0);
                    await writer.AddAsync(i, columns, cancellationToken);
                }

                info = await writer.CompleteAsync(cancellationToken);
            }

            // Read every row group back: the bytes count only for data that comes back exactly.
            var verified = true;
            var offsets = new int[series.Count];
            foreach (var part in info.Series)
            {
                var read = await SegmentFile.ReadAsync(path, part.RowGroup, float32, cancellationToken);
                var (steps, values, timestamps) = series[part.SeriesId];
                var at = offsets[part.SeriesId];
                verified &= read.Count == part.Rows
                    && read.Steps.AsSpan(0, read.Count).SequenceEqual(steps.AsSpan(at, read.Count))
                    && read.Timestamps.AsSpan(0, read.Count).SequenceEqual(timestamps.AsSpan(at, read.Count))
                    && MemoryMarshal.Cast<double, long>(read.Values.AsSpan(0, read.Count)).SequenceEqual(MemoryMarshal.Cast<double, long>(values.AsSpan(at, read.Count)));
                offsets[part.SeriesId] = at + read.Count;
            }

            verified &= offsets.Select((n, i) => n == series[i].Steps.Length).All(x => x);

            var bytes = new Dictionary<string, long>(StringComparer.Ordinal);
            await using (var stream = File.OpenRead(path))
            {
                await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken);
                foreach (var rowGroup in reader.Metadata!.RowGroups)
                {
                    foreach (var chunk in rowGroup.Columns)
                    {
                        var name = string.Join('.', chunk.MetaData!.PathInSchema);
                        bytes[name] = bytes.GetValueOrDefault(name) + chunk.MetaData.TotalCompressedSize;
                    }
                }
            }

            return new SegmentFootprint(series.Sum(s => (long)s.Steps.Length), new FileInfo(path).Length, bytes, float32 ? "float" : "double", verified);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
