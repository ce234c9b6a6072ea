using System.Runtime.CompilerServices;
using Microsoft.Win32.SafeHandles;
using Parquet.Meta;
using ZstdSharp;
using ParquetEncoding = Parquet.Meta.Encoding;

namespace MetricStore.Storage.Segments;

/// <summary>
/// Decodes one row group of a point file straight from its pages into <see cref="SeriesColumns"/>,
/// for the layout <see cref="SegmentWriter"/> writes: required columns, data pages (v1) holding
/// step and timestamp_ms as DELTA_BINARY_PACKED int64 and value as BYTE_STREAM_SPLIT float or
/// double, zstd or uncompressed. Parquet.Net's reader allocates its page buffers on every read (about
/// 1.6 MB for a 100k-point row group, RowGroupDecodeBenchmarks, large-object garbage under a cache-missing load); this decoder
/// reuses its scratch buffers and zstd context, so a read allocates only the columns it returns (and
/// nothing when given columns to fill). Floats are widened straight into the double column.
/// Anything else (another writer's encodings, a dictionary page, data page v2, optional columns,
/// another codec) raises <see cref="UnsupportedLayoutException"/>, and the caller reads that row
/// group through Parquet.Net instead. One instance decodes one row group at a time.
/// </summary>
internal sealed class PointPageDecoder : IDisposable
{
    private const int Padding = 16; // bytes past the data, so bit unpacking may read whole words
    private readonly Decompressor _zstd = new();
    private byte[] _chunk = new byte[64 * 1024];
    private byte[] _page = new byte[64 * 1024];

    /// <summary>Thrown for a valid Parquet layout this decoder does not handle.</summary>
    public sealed class UnsupportedLayoutException(string message) : Exception(message);

    /// <summary>The columns of the point file this decoder reads, found once per open file.</summary>
    public sealed record Layout(int Step, int Timestamp, int Value, bool Float32);

    /// <summary>The layout of a point file's schema, or null when it is not one this decoder reads.</summary>
    public static Layout? LayoutOf(FileMetaData metadata)
    {
        int step = -1, timestamp = -1, value = -1;
        var float32 = false;
        var leaf = 0;
        foreach (var element in metadata.Schema.Skip(1))
        {
            if (element.NumChildren is > 0)
            {
                return null; // nested: not a point file
            }

            if (element.RepetitionType != FieldRepetitionType.REQUIRED)
            {
                return null; // definition levels in the pages
            }

            switch (element.Name)
            {
                case "step" when element.Type == Parquet.Meta.Type.INT64:
                    step = leaf;
                    break;
                case "timestamp_ms" when element.Type == Parquet.Meta.Type.INT64:
                    timestamp = leaf;
                    break;
                case "value" when element.Type is Parquet.Meta.Type.FLOAT or Parquet.Meta.Type.DOUBLE:
                    value = leaf;
                    float32 = element.Type == Parquet.Meta.Type.FLOAT;
                    break;
            }

            leaf++;
        }

        return step < 0 || timestamp < 0 || value < 0 ? null : new Layout(step, timestamp, value, float32);
    }

    /// <summary>
    /// Row group <paramref name="rowGroup"/> of the open file, into <paramref name="into"/> when it
    /// is large enough, else into new columns.
    /// </summary>
    /// <exception cref="UnsupportedLayoutException">A page this decoder does not handle; <paramref name="into"/> may be partly overwritten.</exception>
    /// <exception cref="InvalidDataException">The pages contradict the footer (a damaged file).</exception>
    public SeriesColumns Read(SafeFileHandle file, FooterIndex footer, Layout layout, int rowGroup, SeriesColumns? into = null)
    {
        var rows = footer.Rows(rowGroup);
        if (rows is < 0 or > int.MaxValue)
        {
            throw new InvalidDataException($"row group {rowGroup} has {rows} rows");
        }

        var n = (int)rows;
        var columns = into is not null && into.Steps.Length >= n ? into : new SeriesColumns(n);
        ReadInt64(file, Chunk(footer, rowGroup, layout.Step), columns.Steps.AsSpan(0, n));
        ReadInt64(file, Chunk(footer, rowGroup, layout.Timestamp), columns.Timestamps.AsSpan(0, n));
        ReadValues(file, Chunk(footer, rowGroup, layout.Value), layout.Float32, columns.Values.AsSpan(0, n));
        columns.Count = n;
        return columns;
    }

    public void Dispose() => _zstd.Dispose();

    private static ColumnChunkInfo Chunk(FooterIndex footer, int rowGroup, int column) =>
        column < footer.Columns(rowGroup) && footer.Chunk(rowGroup, column) is { HasMetaData: true } chunk
            ? chunk
            : throw new UnsupportedLayoutException("column chunk without inline metadata");

    private void ReadInt64(SafeFileHandle file, in ColumnChunkInfo chunk, Span<long> into)
    {
        var size = LoadChunk(file, chunk);
        var position = 0;
        for (var done = 0; done < into.Length;)
        {
            var (encoding, count, length) = NextPage(chunk, size, ref position, into.Length - done);
            if (encoding != ParquetEncoding.DELTA_BINARY_PACKED)
            {
                throw new UnsupportedLayoutException($"int64 page encoded {encoding}");
            }

            DecodeDeltaBinaryPacked(_page.AsSpan(0, length + Padding), length, into.Slice(done, count));
            done += count;
        }
    }

    private void ReadValues(SafeFileHandle file, in ColumnChunkInfo chunk, bool float32, Span<double> into)
    {
        var size = LoadChunk(file, chunk);
        var position = 0;
        for (var done = 0; done < into.Length;)
        {
            var (encoding, count, length) = NextPage(chunk, size, ref position, into.Length - done);
            if (encoding != ParquetEncoding.BYTE_STREAM_SPLIT)
            {
                throw new UnsupportedLayoutException($"value page encoded {encoding}");
            }

            if (float32)
            {
                DecodeByteStreamSplitFloat(_page.AsSpan(0, length), into.Slice(done, count));
            }
            else
            {
                DecodeByteStreamSplitDouble(_page.AsSpan(0, length), into.Slice(done, count));
            }

            done += count;
        }
    }

    /// <summary>Reads a column chunk (its pages with their headers) into <see cref="_chunk"/>; returns its size.</summary>
    private int LoadChunk(SafeFileHandle file, in ColumnChunkInfo chunk)
    {
        if (chunk.Codec is not (CompressionCodec.ZSTD or CompressionCodec.UNCOMPRESSED))
        {
            throw new UnsupportedLayoutException($"codec {chunk.Codec}");
        }

        if (chunk.HasDictionaryPage)
        {
            throw new UnsupportedLayoutException("dictionary page");
        }

        if (chunk.TotalCompressedSize is <= 0 or > int.MaxValue - Padding || chunk.DataPageOffset < 0)
        {
            throw new InvalidDataException($"column chunk of {chunk.TotalCompressedSize} bytes at {chunk.DataPageOffset}");
        }

        var size = (int)chunk.TotalCompressedSize;
        Grow(ref _chunk, size + Padding);
        if (RandomAccess.Read(file, _chunk.AsSpan(0, size), chunk.DataPageOffset) != size)
        {
            throw new InvalidDataException($"column chunk at {chunk.DataPageOffset} runs past the end of the file");
        }

        return size;
    }

    /// <summary>
    /// The next data page of the chunk in <see cref="_chunk"/>, decompressed into <see cref="_page"/>
    /// (followed by <see cref="Padding"/> zero bytes): its encoding, value count and byte length.
    /// </summary>
    private (ParquetEncoding Encoding, int Count, int Length) NextPage(in ColumnChunkInfo chunk, int size, ref int position, int valuesLeft)
    {
        var at = chunk.DataPageOffset + position;
        var header = PageHeaderReader.Read(_chunk.AsSpan(0, size), ref position);
        if (header.Type != PageType.DATA_PAGE)
        {
            throw new UnsupportedLayoutException($"page type {header.Type}");
        }

        if (header.CompressedSize < 0 || header.CompressedSize > size - position || header.UncompressedSize is < 0 or > int.MaxValue - Padding
            || header.Values <= 0 || header.Values > valuesLeft)
        {
            throw new InvalidDataException($"page at {at} of {header.Values} values, {header.CompressedSize} bytes ({header.UncompressedSize} uncompressed); {valuesLeft} values and {size - position} bytes left in the chunk");
        }

        Grow(ref _page, header.UncompressedSize + Padding);
        var compressed = _chunk.AsSpan(position, header.CompressedSize);
        int length;
        if (chunk.Codec == CompressionCodec.ZSTD)
        {
            try
            {
                length = _zstd.Unwrap(compressed, _page.AsSpan(0, header.UncompressedSize));
            }
            catch (ZstdException e)
            {
                throw new InvalidDataException($"page at {at} does not decompress: {e.Message}", e);
            }
        }
        else
        {
            compressed.CopyTo(_page);
            length = compressed.Length;
        }

        if (length != header.UncompressedSize)
        {
            throw new InvalidDataException($"page at {at} decompressed to {length} bytes, not {header.UncompressedSize}");
        }

        _page.AsSpan(length, Padding).Clear();
        position += header.CompressedSize;
        return (header.Encoding, header.Values, length);
    }

    private static void Grow(ref byte[] buffer, int size)
    {
        if (buffer.Length < size)
        {
            buffer = new byte[Math.Max(size, (int)Math.Min(int.MaxValue - 64, buffer.Length * 2L))];
        }
    }

    /// <summary>
    /// DELTA_BINARY_PACKED: a header (values per block, miniblocks per block, value count, first
    /// value), then blocks of a minimum delta, one bit width per miniblock and the miniblocks,
    /// each holding its deltas minus the minimum, bit-packed from the least significant bit.
    /// Sums wrap, as the writer's differences did. <paramref name="page"/> has
    /// <see cref="Padding"/> readable bytes after its <paramref name="length"/>.
    /// </summary>
    internal static void DecodeDeltaBinaryPacked(ReadOnlySpan<byte> page, int length, Span<long> into)
    {
        var position = 0;
        var blockSize = ReadUleb(page, length, ref position);
        var miniblocks = ReadUleb(page, length, ref position);
        var total = ReadUleb(page, length, ref position);
        var value = ZigZag(ReadUleb(page, length, ref position));
        if (blockSize == 0 || blockSize % 128 != 0 || blockSize > 1 << 20 || miniblocks == 0 || miniblocks > blockSize / 32 || blockSize % miniblocks != 0 || blockSize / miniblocks % 32 != 0)
        {
            throw new InvalidDataException($"delta block of {blockSize} values in {miniblocks} miniblocks");
        }

        if (total != (ulong)into.Length)
        {
            throw new InvalidDataException($"delta page holds {total} values, its header says {into.Length}");
        }

        if (into.IsEmpty)
        {
            return;
        }

        var perMiniblock = (int)(blockSize / miniblocks);
        into[0] = value;
        var done = 1;
        while (done < into.Length)
        {
            var minDelta = ZigZag(ReadUleb(page, length, ref position));
            var widthsAt = position;
            position += (int)miniblocks;
            if (position > length)
            {
                throw new InvalidDataException("delta page ends inside a block header");
            }

            for (var m = 0; m < (int)miniblocks && done < into.Length; m++)
            {
                int width = page[widthsAt + m];
                if (width > 64)
                {
                    throw new InvalidDataException($"delta miniblock {width} bits wide");
                }

                // A last miniblock may be cut to the bytes its values need (writers differ).
                var take = Math.Min(perMiniblock, into.Length - done);
                var bytes = perMiniblock / 8 * width;
                if (position > length - (int)(((long)take * width + 7) / 8))
                {
                    throw new InvalidDataException("delta page ends inside a miniblock");
                }

                value = Unpack(page.Slice(position), width, minDelta, value, into.Slice(done, take));
                done += take;
                position += bytes;
            }
        }
    }

    /// <summary>Adds <paramref name="minDelta"/> plus each packed delta to the running value.</summary>
    private static long Unpack(ReadOnlySpan<byte> packed, int width, long minDelta, long value, Span<long> into)
    {
        unchecked
        {
            if (width == 0)
            {
                for (var i = 0; i < into.Length; i++)
                {
                    value += minDelta;
                    into[i] = value;
                }

                return value;
            }

            var mask = width == 64 ? ulong.MaxValue : (1UL << width) - 1;
            ref var start = ref Unsafe.AsRef(in packed[0]);
            var bit = 0L;
            for (var i = 0; i < into.Length; i++, bit += width)
            {
                var at = (int)(bit >> 3);
                var shift = (int)(bit & 7);
                var word = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, at)) >> shift;
                if (shift + width > 64)
                {
                    word |= (ulong)Unsafe.Add(ref start, at + 8) << (64 - shift);
                }

                value += minDelta + (long)(word & mask);
                into[i] = value;
            }

            return value;
        }
    }

    /// <summary>BYTE_STREAM_SPLIT floats: byte k of value i at k × n + i; widened to double.</summary>
    internal static void DecodeByteStreamSplitFloat(ReadOnlySpan<byte> page, Span<double> into)
    {
        var n = into.Length;
        if (page.Length != 4 * n)
        {
            throw new InvalidDataException($"float page of {page.Length} bytes for {n} values");
        }

        var b0 = page[..n];
        var b1 = page.Slice(n, n);
        var b2 = page.Slice(2 * n, n);
        var b3 = page.Slice(3 * n, n);
        for (var i = 0; i < n; i++)
        {
            var bits = b0[i] | (b1[i] << 8) | (b2[i] << 16) | (b3[i] << 24);
            into[i] = BitConverter.Int32BitsToSingle(bits);
        }
    }

    /// <summary>BYTE_STREAM_SPLIT doubles: byte k of value i at k × n + i.</summary>
    internal static void DecodeByteStreamSplitDouble(ReadOnlySpan<byte> page, Span<double> into)
    {
        var n = into.Length;
        if (page.Length != 8 * n)
        {
            throw new InvalidDataException($"double page of {page.Length} bytes for {n} values");
        }

        for (var i = 0; i < n; i++)
        {
            ulong bits = 0;
            for (var k = 0; k < 8; k++)
            {
                bits |= (ulong)page[(k * n) + i] << (8 * k);
            }

            into[i] = BitConverter.UInt64BitsToDouble(bits);
        }
    }

    private static ulong ReadUleb(ReadOnlySpan<byte> data, int length, ref int position)
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (position >= length)
            {
                throw new InvalidDataException("varint runs past the end of the page");
            }

            var b = data[position++];
            result |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        throw new InvalidDataException("varint longer than 64 bits");
    }

    private static long ZigZag(ulong v) => (long)(v >> 1) ^ -(long)(v & 1);
}
