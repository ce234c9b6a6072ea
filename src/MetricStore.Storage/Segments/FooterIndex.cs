using Parquet.Meta;

namespace MetricStore.Storage.Segments;

/// <summary>
/// What reads and compaction need from a point file's footer, without Parquet.Net's object model:
/// per row group its rows and, per column chunk, where its pages are, their codec, sizes, value
/// count and encodings, plus the timestamp column's min and max. Built once when a file is first
/// opened; the parsed footer is then let go.
/// </summary>
/// <remarks>
/// Parquet.Net's <see cref="FileMetaData"/> takes about 3 KB per row group of four columns (a
/// column chunk, its metadata, statistics, encoding list and path list are each objects). A seal of
/// 20,000 short series writes a file of 20,000 row groups, and the footers kept for reading eight
/// such files held about 500 MB of the heap under that load (docs/benchmarks.md, "Many series").
/// This keeps 48 bytes per column chunk (<see cref="ColumnChunkInfo"/>) in flat arrays.
/// </remarks>
internal sealed class FooterIndex
{
    private readonly long[] _rows;
    private readonly int[] _firstColumn; // per row group, into _chunks; one more entry at the end
    private readonly ColumnChunkInfo[] _chunks;
    private readonly long[] _timestampMin;
    private readonly long[] _timestampMax; // min > max (long.MaxValue, long.MinValue) when the file has no such statistics

    private FooterIndex(string? createdBy, IReadOnlyList<SchemaElement> schema, long[] rows, int[] firstColumn, ColumnChunkInfo[] chunks, long[] timestampMin, long[] timestampMax)
    {
        CreatedBy = createdBy;
        Schema = schema;
        _rows = rows;
        _firstColumn = firstColumn;
        _chunks = chunks;
        _timestampMin = timestampMin;
        _timestampMax = timestampMax;
    }

    public string? CreatedBy { get; }

    /// <summary>The schema elements (a handful per file), as parsed.</summary>
    public IReadOnlyList<SchemaElement> Schema { get; }

    public int RowGroups => _rows.Length;

    public long Rows(int rowGroup) => _rows[rowGroup];

    public int Columns(int rowGroup) => _firstColumn[rowGroup + 1] - _firstColumn[rowGroup];

    public ref readonly ColumnChunkInfo Chunk(int rowGroup, int column) => ref _chunks[_firstColumn[rowGroup] + column];

    /// <summary>The min and max of column <see cref="TimestampColumn"/> in the row group, when the file has them as 8-byte statistics.</summary>
    public bool TryTimestamps(int rowGroup, out long min, out long max)
    {
        min = _timestampMin[rowGroup];
        max = _timestampMax[rowGroup];
        return min <= max;
    }

    /// <summary>The column whose statistics are kept: timestamp_ms in our writer's layout (series_id, step, value, timestamp_ms).</summary>
    public const int TimestampColumn = 3;

    public static FooterIndex Of(FileMetaData metadata)
    {
        var groups = metadata.RowGroups;
        var rows = new long[groups.Count];
        var first = new int[groups.Count + 1];
        var min = new long[groups.Count];
        var max = new long[groups.Count];
        var total = 0;
        for (var g = 0; g < groups.Count; g++)
        {
            first[g] = total;
            total += groups[g].Columns.Count;
        }

        first[groups.Count] = total;
        var chunks = new ColumnChunkInfo[total];
        for (var g = 0; g < groups.Count; g++)
        {
            var group = groups[g];
            rows[g] = group.NumRows;
            (min[g], max[g]) = (long.MaxValue, long.MinValue);
            for (var c = 0; c < group.Columns.Count; c++)
            {
                if (group.Columns[c].MetaData is not { } meta)
                {
                    continue; // HasMetaData false: readers refuse it
                }

                uint encodings = 0;
                foreach (var encoding in meta.Encodings)
                {
                    encodings |= (int)encoding is >= 0 and < 32 ? 1u << (int)encoding : 0;
                }

                chunks[first[g] + c] = new ColumnChunkInfo(meta.NumValues, meta.DataPageOffset, meta.TotalCompressedSize, meta.TotalUncompressedSize, encodings, meta.Codec, HasMetaData: true, HasDictionaryPage: meta.DictionaryPageOffset is not null);
                if (c == TimestampColumn && meta.Statistics is { MinValue.Length: 8, MaxValue.Length: 8 } statistics)
                {
                    (min[g], max[g]) = (BitConverter.ToInt64(statistics.MinValue), BitConverter.ToInt64(statistics.MaxValue));
                }
            }
        }

        return new FooterIndex(metadata.CreatedBy, [.. metadata.Schema], rows, first, chunks, min, max);
    }
}

/// <summary>One column chunk's facts from the footer (longs first, so it packs into 48 bytes).</summary>
internal readonly record struct ColumnChunkInfo(long NumValues, long DataPageOffset, long TotalCompressedSize, long TotalUncompressedSize, uint Encodings, CompressionCodec Codec, bool HasMetaData, bool HasDictionaryPage)
{
    public bool HasEncoding(Encoding encoding) => (int)encoding is >= 0 and < 32 && (Encodings & (1u << (int)encoding)) != 0;
}
