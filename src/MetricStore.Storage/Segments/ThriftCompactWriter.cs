using System.Text;

namespace MetricStore.Storage.Segments;

/// <summary>
/// Writes the Thrift compact protocol into a reusable buffer: the little of it a Parquet page header
/// and footer need (i32, i64, binary and string fields, structs, lists). Fields must be written in
/// increasing id order within a struct, as the generated Thrift writers do.
/// </summary>
internal sealed class ThriftCompactWriter
{
    // Wire types: PageHeaderReader's, the reading side of the same protocol.
    public const byte I32 = PageHeaderReader.I32;
    public const byte Binary = PageHeaderReader.Binary;
    public const byte Struct = PageHeaderReader.Struct;
    private const byte I64 = PageHeaderReader.I64;
    private const byte List = PageHeaderReader.List;

    private readonly Stack<short> _enclosing = new(); // the last field id of each enclosing struct
    private byte[] _buffer;
    private short _lastField;

    private readonly int _initialCapacity;

    public ThriftCompactWriter(int capacity)
    {
        _initialCapacity = capacity;
        _buffer = new byte[capacity];
    }

    public int Length { get; private set; }

    /// <summary>Bytes the buffer holds now (it grows as needed).</summary>
    public int Capacity => _buffer.Length;

    /// <summary>Empties the writer and, when its buffer grew past <paramref name="maxBytes"/>, lets go of it for one of the initial size.</summary>
    public void Shrink(int maxBytes)
    {
        Reset();
        if (_buffer.Length > maxBytes)
        {
            _buffer = new byte[_initialCapacity];
        }
    }

    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, Length);

    /// <summary>Starts over for a new top-level struct.</summary>
    public void Reset()
    {
        Length = 0;
        _lastField = 0;
        _enclosing.Clear();
    }

    public void WriteI32(short field, int value)
    {
        FieldHeader(field, I32);
        Varint(ZigZag(value));
    }

    public void WriteI64(short field, long value)
    {
        FieldHeader(field, I64);
        Varint(ZigZag(value));
    }

    public void WriteBinary(short field, ReadOnlySpan<byte> value)
    {
        FieldHeader(field, Binary);
        WriteBinaryValue(value);
    }

    public void WriteString(short field, string value)
    {
        FieldHeader(field, Binary);
        WriteStringValue(value);
    }

    /// <summary>A binary field of <paramref name="length"/> bytes the caller writes into the returned span.</summary>
    public Span<byte> WriteBinary(short field, int length)
    {
        FieldHeader(field, Binary);
        Varint((ulong)length);
        var span = Reserve(length);
        Length += length;
        return span;
    }

    /// <summary>A struct field; close it with <see cref="EndStruct"/>.</summary>
    public void BeginStruct(short field)
    {
        FieldHeader(field, Struct);
        BeginListStruct();
    }

    /// <summary>A struct as an element of a list (no field header); close it with <see cref="EndStruct"/>.</summary>
    public void BeginListStruct()
    {
        _enclosing.Push(_lastField);
        _lastField = 0;
    }

    public void EndStruct()
    {
        Byte(0); // stop
        _lastField = _enclosing.TryPop(out var last) ? last : (short)0;
    }

    /// <summary>A list field of <paramref name="count"/> elements of <paramref name="elementType"/>, written next with the value methods.</summary>
    public void BeginList(short field, byte elementType, int count)
    {
        FieldHeader(field, List);
        if (count < 15)
        {
            Byte((byte)((count << 4) | elementType));
        }
        else
        {
            Byte((byte)(0xF0 | elementType));
            Varint((ulong)count);
        }
    }

    public void WriteI32Value(int value) => Varint(ZigZag(value));

    public void WriteBinaryValue(ReadOnlySpan<byte> value)
    {
        Varint((ulong)value.Length);
        value.CopyTo(Reserve(value.Length));
        Length += value.Length;
    }

    public void WriteStringValue(string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        Varint((ulong)length);
        Encoding.UTF8.GetBytes(value, Reserve(length));
        Length += length;
    }

    /// <summary>Ends the top-level struct.</summary>
    public void End() => Byte(0);

    /// <summary>Zigzag: small negative and positive numbers both become small unsigned ones (Thrift and Parquet's delta encoding).</summary>
    internal static ulong ZigZag(long value) => (ulong)((value << 1) ^ (value >> 63));

    /// <summary>Writes an unsigned LEB128 varint at the start of <paramref name="output"/>; returns its length (at most 10).</summary>
    internal static int WriteVarint(Span<byte> output, ulong value)
    {
        var n = 0;
        while (value >= 0x80)
        {
            output[n++] = (byte)(value | 0x80);
            value >>= 7;
        }

        output[n++] = (byte)value;
        return n;
    }

    private void FieldHeader(short field, byte type)
    {
        var delta = field - _lastField;
        if (delta is > 0 and <= 15)
        {
            Byte((byte)((delta << 4) | type));
        }
        else
        {
            Byte(type);
            Varint(ZigZag(field));
        }

        _lastField = field;
    }

    private void Varint(ulong value) => Length += WriteVarint(Reserve(10), value);

    private void Byte(byte value)
    {
        Reserve(1)[0] = value;
        Length++;
    }

    /// <summary>Room for <paramref name="bytes"/> more bytes at <see cref="Length"/>.</summary>
    private Span<byte> Reserve(int bytes)
    {
        if (Length + bytes > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(Length + bytes, _buffer.Length * 2));
        }

        return _buffer.AsSpan(Length, bytes);
    }
}
