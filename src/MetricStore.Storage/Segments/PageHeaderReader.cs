using Parquet.Meta;
using ParquetEncoding = Parquet.Meta.Encoding;

namespace MetricStore.Storage.Segments;

/// <summary>The fields of a Parquet page header that <see cref="PointPageDecoder"/> uses.</summary>
internal readonly record struct PageHeaderFields(
    PageType Type,
    int UncompressedSize,
    int CompressedSize,
    int Values,
    ParquetEncoding Encoding,
    ParquetEncoding? DefinitionLevelEncoding);

/// <summary>
/// Reads a Parquet PageHeader (Thrift compact protocol) from a span without allocating: the page
/// type and sizes, and the value count and encodings of a data page (v1). Every other field,
/// statistics included, is skipped by its wire type, so headers of newer writers still parse.
/// </summary>
internal static class PageHeaderReader
{
    private const int MaxDepth = 32;

    public static PageHeaderFields Read(ReadOnlySpan<byte> data, ref int position)
    {
        PageType? type = null;
        int? uncompressed = null, compressed = null, values = null;
        ParquetEncoding? encoding = null, definitionLevels = null;
        short field = 0;
        while (true)
        {
            var (id, wire) = FieldHeader(data, ref position, ref field);
            if (wire == Stop)
            {
                break;
            }

            switch (id)
            {
                case 1 when wire == I32:
                    type = (PageType)ReadI32(data, ref position);
                    break;
                case 2 when wire == I32:
                    uncompressed = ReadI32(data, ref position);
                    break;
                case 3 when wire == I32:
                    compressed = ReadI32(data, ref position);
                    break;
                case 5 when wire == Struct:
                    (values, encoding, definitionLevels) = ReadDataPageHeader(data, ref position);
                    break;
                default:
                    Skip(data, ref position, wire, 0);
                    break;
            }
        }

        if (type is null || uncompressed is null || compressed is null)
        {
            throw new InvalidDataException("page header without its type or sizes");
        }

        if (type == PageType.DATA_PAGE && (values is null || encoding is null))
        {
            throw new InvalidDataException("data page header without its value count or encoding");
        }

        return new PageHeaderFields(type.Value, uncompressed.Value, compressed.Value, values ?? 0, encoding ?? ParquetEncoding.PLAIN, definitionLevels);
    }

    /// <summary>A DataPageHeader struct: its value count, encoding and definition-level encoding.</summary>
    private static (int? Values, ParquetEncoding? Encoding, ParquetEncoding? DefinitionLevels) ReadDataPageHeader(ReadOnlySpan<byte> data, ref int position)
    {
        int? values = null;
        ParquetEncoding? encoding = null, definitionLevels = null;
        short field = 0;
        while (true)
        {
            var (id, wire) = FieldHeader(data, ref position, ref field);
            if (wire == Stop)
            {
                return (values, encoding, definitionLevels);
            }

            switch (id)
            {
                case 1 when wire == I32:
                    values = ReadI32(data, ref position);
                    break;
                case 2 when wire == I32:
                    encoding = (ParquetEncoding)ReadI32(data, ref position);
                    break;
                case 3 when wire == I32:
                    definitionLevels = (ParquetEncoding)ReadI32(data, ref position);
                    break;
                default:
                    Skip(data, ref position, wire, 1);
                    break;
            }
        }
    }

    // Compact protocol wire types (ThriftCompactWriter writes the same).
    internal const int Stop = 0;
    internal const int True = 1;
    internal const int False = 2;
    internal const int Byte = 3;
    internal const int I16 = 4;
    internal const int I32 = 5;
    internal const int I64 = 6;
    internal const int Double = 7;
    internal const int Binary = 8;
    internal const int List = 9;
    internal const int Set = 10;
    internal const int Map = 11;
    internal const int Struct = 12;

    private static (short Id, int Wire) FieldHeader(ReadOnlySpan<byte> data, ref int position, ref short last)
    {
        var b = NextByte(data, ref position);
        var wire = b & 0x0f;
        if (wire == Stop)
        {
            return (0, Stop);
        }

        var delta = b >> 4;
        last = delta != 0 ? (short)(last + delta) : (short)ZigZag(ReadVarint(data, ref position));
        return (last, wire);
    }

    private static void Skip(ReadOnlySpan<byte> data, ref int position, int wire, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new InvalidDataException("page header nested too deeply");
        }

        switch (wire)
        {
            case True or False:
                break;
            case Byte:
                NextByte(data, ref position);
                break;
            case I16 or I32 or I64:
                ReadVarint(data, ref position);
                break;
            case Double:
                Advance(data, ref position, 8);
                break;
            case Binary:
                Advance(data, ref position, Length(ReadVarint(data, ref position)));
                break;
            case List or Set:
                var header = NextByte(data, ref position);
                var count = header >> 4 == 15 ? Length(ReadVarint(data, ref position)) : header >> 4;
                for (var i = 0; i < count; i++)
                {
                    SkipElement(data, ref position, header & 0x0f, depth + 1);
                }

                break;
            case Map:
                var entries = Length(ReadVarint(data, ref position));
                if (entries > 0)
                {
                    var types = NextByte(data, ref position);
                    for (var i = 0; i < entries; i++)
                    {
                        SkipElement(data, ref position, types >> 4, depth + 1);
                        SkipElement(data, ref position, types & 0x0f, depth + 1);
                    }
                }

                break;
            case Struct:
                short field = 0;
                while (true)
                {
                    var (_, inner) = FieldHeader(data, ref position, ref field);
                    if (inner == Stop)
                    {
                        break;
                    }

                    Skip(data, ref position, inner, depth + 1);
                }

                break;
            default:
                throw new InvalidDataException($"page header has a field of unknown wire type {wire}");
        }
    }

    /// <summary>A list, set or map element: a boolean is one byte there, not part of a field header.</summary>
    private static void SkipElement(ReadOnlySpan<byte> data, ref int position, int wire, int depth)
    {
        if (wire is True or False)
        {
            NextByte(data, ref position);
        }
        else
        {
            Skip(data, ref position, wire, depth);
        }
    }

    private static int ReadI32(ReadOnlySpan<byte> data, ref int position)
    {
        var value = ZigZag(ReadVarint(data, ref position));
        return value is < int.MinValue or > int.MaxValue
            ? throw new InvalidDataException($"page header i32 field holds {value}")
            : (int)value;
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> data, ref int position)
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var b = NextByte(data, ref position);
            result |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        throw new InvalidDataException("page header varint longer than 64 bits");
    }

    private static int Length(ulong value) =>
        value > int.MaxValue ? throw new InvalidDataException($"page header length {value}") : (int)value;

    private static void Advance(ReadOnlySpan<byte> data, ref int position, int count)
    {
        if (count > data.Length - position)
        {
            throw new InvalidDataException("page header runs past the end of its column chunk");
        }

        position += count;
    }

    private static byte NextByte(ReadOnlySpan<byte> data, ref int position) =>
        position < data.Length ? data[position++] : throw new InvalidDataException("page header runs past the end of its column chunk");

    private static long ZigZag(ulong v) => (long)(v >> 1) ^ -(long)(v & 1);
}
