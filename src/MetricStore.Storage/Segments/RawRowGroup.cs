using Microsoft.Win32.SafeHandles;
using Parquet.Meta;

namespace MetricStore.Storage.Segments;

/// <summary>
/// One row group of a point file exactly as <see cref="SegmentWriter"/> wrote it: its four column
/// chunks (series_id, step, value, timestamp_ms), pages and page headers included, back to back in
/// <see cref="Bytes"/>, and what the footer says of each (<see cref="Chunks"/>, offsets relative to
/// the start of the bytes). Page headers hold no file offsets, so the bytes are valid at any
/// position of another point file of the same value type and codec; compaction copies them there
/// instead of decoding and re-encoding (<see cref="SegmentWriter.AddRawAsync"/>).
/// </summary>
internal sealed record RawRowGroup(int Rows, long MinTimestamp, long MaxTimestamp, PointPageEncoder.Chunk[] Chunks, byte[] Bytes, int Length)
{
    /// <summary>The footer's created_by of files our writer wrote.</summary>
    public const string CreatedBy = "MetricStore";

    /// <summary>
    /// Row group <paramref name="rowGroup"/> of an open file, read into <paramref name="buffer"/>
    /// (or a larger one); null when the file is not exactly our writer's layout with this value type
    /// and codec, so that the caller decodes and re-encodes instead.
    /// </summary>
    /// <exception cref="InvalidDataException">The footer points past the end of the file.</exception>
    public static RawRowGroup? Read(SafeFileHandle file, FooterIndex? footer, int rowGroup, bool float32, bool zstd, byte[] buffer)
    {
        var columns = SegmentWriter.Columns;
        if (footer is null || footer.CreatedBy != CreatedBy || footer.Schema.Count != 1 + columns.Length || rowGroup >= footer.RowGroups)
        {
            return null;
        }

        for (var c = 0; c < columns.Length; c++)
        {
            var element = footer.Schema[c + 1];
            if (element.Name != columns[c].Name || element.Type != SegmentWriter.TypeOf(c, float32) || element.RepetitionType != FieldRepetitionType.REQUIRED || element.NumChildren is > 0)
            {
                return null;
            }
        }

        var numRows = footer.Rows(rowGroup);
        if (footer.Columns(rowGroup) != columns.Length || numRows is <= 0 or > SegmentWriter.MaxRowGroupRows)
        {
            return null;
        }

        var rows = (int)numRows;
        var chunks = new PointPageEncoder.Chunk[columns.Length];
        var start = footer.Chunk(rowGroup, 0) is { HasMetaData: true } firstChunk ? firstChunk.DataPageOffset : -1;
        var end = start;
        for (var c = 0; c < columns.Length; c++)
        {
            ref readonly var chunk = ref footer.Chunk(rowGroup, c);
            if (!chunk.HasMetaData
                || chunk.Codec != (zstd ? CompressionCodec.ZSTD : CompressionCodec.UNCOMPRESSED)
                || chunk.HasDictionaryPage
                || chunk.NumValues != rows
                || chunk.DataPageOffset != end // back to back, as our writer writes them
                || chunk.TotalCompressedSize <= 0
                || !chunk.HasEncoding((Parquet.Meta.Encoding)columns[c].Encoding))
            {
                return null;
            }

            chunks[c] = new PointPageEncoder.Chunk(end - start, chunk.TotalCompressedSize, chunk.TotalUncompressedSize, rows, columns[c].Encoding);
            end += chunk.TotalCompressedSize;
        }

        if (!footer.TryTimestamps(rowGroup, out var minTimestamp, out var maxTimestamp) || start < 0 || end - start > int.MaxValue)
        {
            return null;
        }

        var length = (int)(end - start);
        if (buffer.Length < length)
        {
            buffer = new byte[Math.Max(length, buffer.Length * 2)];
        }

        for (var read = 0; read < length;)
        {
            var n = RandomAccess.Read(file, buffer.AsSpan(read, length - read), start + read);
            if (n == 0)
            {
                throw new InvalidDataException($"row group of {length} bytes at {start} runs past the end of the file");
            }

            read += n;
        }

        return new RawRowGroup(rows, minTimestamp, maxTimestamp, chunks, buffer, length);
    }
}
