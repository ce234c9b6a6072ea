using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace MetricStore.Protocol;

/// <summary>
/// A decoded metricstore.v1.WriteRequest whose columns live in pooled arrays: parsing allocates
/// per batch (the batch object), never per point, and no strings for series keys: each batch's key
/// stays as its wire bytes (<see cref="KeyBytes"/>) for the server to look up in the keys it has
/// seen (<see cref="WriteRequestReader.ParseKey"/> parses one). Call <see cref="Return"/> (or let
/// the engine's release callback do it) to give the arrays back.
/// </summary>
public sealed class PooledWriteRequest
{
    private PooledColumn<byte> _keyBytes;

    public string WriterId { get; internal set; } = "";

    public ulong Seq { get; internal set; }

    public List<PooledSeriesBatch> Batches { get; } = [];

    /// <summary>The serialized SeriesKey of a batch (every occurrence of the field, concatenated: protobuf merges them).</summary>
    public ReadOnlySpan<byte> KeyBytes(PooledSeriesBatch batch) => _keyBytes.Array.AsSpan(batch.KeyOffset, batch.KeyLength);

    internal ref PooledColumn<byte> KeyColumn => ref _keyBytes;

    public void Return()
    {
        foreach (var batch in Batches)
        {
            batch.Return();
        }

        _keyBytes.Return();
    }
}

/// <summary>One decoded SeriesBatch; column arrays are rented and may be longer than their counts.</summary>
public sealed class PooledSeriesBatch
{
    public bool HasKey { get; internal set; }

    /// <summary>Where the batch's key lies in its request's <see cref="PooledWriteRequest.KeyBytes"/>.</summary>
    public int KeyOffset { get; internal set; }

    public int KeyLength { get; internal set; }

    public PooledColumn<long> Steps;
    public PooledColumn<double> Values;
    public PooledColumn<float> ValuesF32;
    public PooledColumn<long> Timestamps;

    public void Return()
    {
        Steps.Return();
        Values.Return();
        ValuesF32.Return();
        Timestamps.Return();
    }
}

/// <summary>A series key as sent: run id, metric and labels (the last value of a repeated label key wins, as in a protobuf map).</summary>
public sealed record WireSeriesKey(string RunId, string Metric, IReadOnlyList<KeyValuePair<string, string>> Labels);

/// <summary>A growable column over <see cref="ArrayPool{T}"/> (repeated fields may arrive in several pieces).</summary>
public struct PooledColumn<T>
{
    private T[]? _array;

    public readonly int Count => _count;

    public readonly T[] Array => _array ?? [];

    private int _count;

    public void Append(ReadOnlySpan<T> values)
    {
        Ensure(values.Length);
        values.CopyTo(_array.AsSpan(_count));
        _count += values.Length;
    }

    public void Append(T value)
    {
        Ensure(1);
        _array![_count++] = value;
    }

    /// <summary>Hands the array to the caller (who returns it to the pool); the column is empty after.</summary>
    public T[] Detach()
    {
        var array = _array ?? ArrayPool<T>.Shared.Rent(1);
        _array = null;
        _count = 0;
        return array;
    }

    public void Return()
    {
        if (_array is not null)
        {
            ArrayPool<T>.Shared.Return(_array);
            _array = null;
        }

        _count = 0;
    }

    internal void Ensure(int extra)
    {
        if (_array is not null && _count + extra <= _array.Length)
        {
            return;
        }

        var grown = ArrayPool<T>.Shared.Rent(Math.Max(_count + extra, 16));
        if (_array is not null)
        {
            _array.AsSpan(0, _count).CopyTo(grown);
            ArrayPool<T>.Shared.Return(_array);
        }

        _array = grown;
    }

    internal void Shrink(int by) => _count -= by;

    internal Span<T> AppendSpan(int length)
    {
        Ensure(length);
        var span = _array.AsSpan(_count, length);
        _count += length;
        return span;
    }
}

/// <summary>
/// Parses the protobuf wire format of metricstore.v1.WriteRequest straight into pooled columns:
/// packed and unpacked repeated fields (both are valid proto3), fields in any order and repeated
/// pieces concatenated, unknown fields skipped, as the protobuf spec requires of a parser. The
/// generated parser grows a RepeatedField array per column (about 30 bytes per point here).
/// </summary>
public static class WriteRequestReader
{
    private const int Varint = 0;
    private const int Fixed64 = 1;
    private const int LengthDelimited = 2;
    private const int StartGroup = 3;
    private const int EndGroup = 4;
    private const int Fixed32 = 5;

    public static PooledWriteRequest Read(ReadOnlySequence<byte> payload)
    {
        if (payload.IsSingleSegment)
        {
            return Read(payload.FirstSpan);
        }

        // Kestrel hands large messages over in several segments: one contiguous copy, then one pass.
        var length = checked((int)payload.Length);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            payload.CopyTo(buffer);
            return Read(buffer.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public static PooledWriteRequest Read(ReadOnlySpan<byte> data)
    {
        var request = new PooledWriteRequest();
        try
        {
            var p = 0;
            while (p < data.Length)
            {
                var (field, wire) = Tag(data, ref p);
                switch (field)
                {
                    case 1 when wire == LengthDelimited:
                        request.WriterId = Encoding.UTF8.GetString(Bytes(data, ref p));
                        break;
                    case 2 when wire == Varint:
                        request.Seq = ReadVarint(data, ref p);
                        break;
                    case 3 when wire == LengthDelimited:
                        var batch = new PooledSeriesBatch();
                        request.Batches.Add(batch);
                        ReadBatch(Bytes(data, ref p), batch, ref request.KeyColumn);
                        break;
                    default:
                        Skip(data, ref p, field, wire);
                        break;
                }
            }

            return request;
        }
        catch
        {
            request.Return();
            throw;
        }
    }

    private static void ReadBatch(ReadOnlySpan<byte> data, PooledSeriesBatch batch, ref PooledColumn<byte> keys)
    {
        var p = 0;
        while (p < data.Length)
        {
            var (field, wire) = Tag(data, ref p);
            switch (field, wire)
            {
                case (1, LengthDelimited):
                    var key = Bytes(data, ref p);
                    CheckKey(key); // malformed bytes fail the request here, as every other field does
                    if (!batch.HasKey)
                    {
                        batch.HasKey = true;
                        batch.KeyOffset = keys.Count;
                    }

                    keys.Append(key); // right after this batch's earlier key bytes: only keys are appended, one batch at a time
                    batch.KeyLength += key.Length;
                    break;
                case (2, LengthDelimited):
                    ReadPackedVarints(Bytes(data, ref p), ref batch.Steps);
                    break;
                case (2, Varint):
                    batch.Steps.Append((long)ReadVarint(data, ref p));
                    break;
                case (3, LengthDelimited):
                    var doubles = Bytes(data, ref p);
                    Check(doubles.Length % 8 == 0, "packed values length is not a multiple of 8");
                    CopyLittleEndian(doubles, batch.Values.AppendSpan(doubles.Length / 8));
                    break;
                case (3, Fixed64):
                    batch.Values.Append(BitConverter.Int64BitsToDouble((long)ReadFixed64(data, ref p)));
                    break;
                case (4, LengthDelimited):
                    var floats = Bytes(data, ref p);
                    Check(floats.Length % 4 == 0, "packed values_f32 length is not a multiple of 4");
                    CopyLittleEndian(floats, batch.ValuesF32.AppendSpan(floats.Length / 4));
                    break;
                case (4, Fixed32):
                    batch.ValuesF32.Append(BitConverter.Int32BitsToSingle((int)ReadFixed32(data, ref p)));
                    break;
                case (5, LengthDelimited):
                    ReadPackedVarints(Bytes(data, ref p), ref batch.Timestamps);
                    break;
                case (5, Varint):
                    batch.Timestamps.Append((long)ReadVarint(data, ref p));
                    break;
                default:
                    Skip(data, ref p, field, wire);
                    break;
            }
        }
    }

    /// <summary>Walks a serialized SeriesKey as <see cref="ParseKey"/> does, without decoding its strings.</summary>
    private static void CheckKey(ReadOnlySpan<byte> data)
    {
        var p = 0;
        while (p < data.Length)
        {
            var (field, wire) = Tag(data, ref p);
            if (field == 3 && wire == LengthDelimited)
            {
                var entry = Bytes(data, ref p);
                var q = 0;
                while (q < entry.Length)
                {
                    var (f, w) = Tag(entry, ref q);
                    Skip(entry, ref q, f, w);
                }
            }
            else
            {
                Skip(data, ref p, field, wire);
            }
        }
    }

    /// <summary>
    /// Parses a serialized metricstore.v1.SeriesKey (fields in any order, repeated fields merged,
    /// unknown fields skipped). Throws <see cref="InvalidDataException"/> on malformed bytes.
    /// </summary>
    public static WireSeriesKey ParseKey(ReadOnlySpan<byte> data)
    {
        string runId = "", metric = "";
        var labels = new List<KeyValuePair<string, string>>();
        var p = 0;
        while (p < data.Length)
        {
            var (field, wire) = Tag(data, ref p);
            switch (field, wire)
            {
                case (1, LengthDelimited):
                    runId = Encoding.UTF8.GetString(Bytes(data, ref p));
                    break;
                case (2, LengthDelimited):
                    metric = Encoding.UTF8.GetString(Bytes(data, ref p));
                    break;
                case (3, LengthDelimited):
                    var entry = Bytes(data, ref p);
                    string key = "", value = "";
                    var q = 0;
                    while (q < entry.Length)
                    {
                        var (f, w) = Tag(entry, ref q);
                        if (f == 1 && w == LengthDelimited)
                        {
                            key = Encoding.UTF8.GetString(Bytes(entry, ref q));
                        }
                        else if (f == 2 && w == LengthDelimited)
                        {
                            value = Encoding.UTF8.GetString(Bytes(entry, ref q));
                        }
                        else
                        {
                            Skip(entry, ref q, f, w);
                        }
                    }

                    // A map keeps the last value of a repeated key, as protobuf does.
                    var at = labels.FindIndex(l => l.Key == key);
                    if (at >= 0)
                    {
                        labels[at] = new(key, value);
                    }
                    else
                    {
                        labels.Add(new(key, value));
                    }

                    break;
                default:
                    Skip(data, ref p, field, wire);
                    break;
            }
        }

        return new WireSeriesKey(runId, metric, labels);
    }

    private static void ReadPackedVarints(ReadOnlySpan<byte> data, ref PooledColumn<long> column)
    {
        // At most one value per byte: reserve that, then give back what was not used.
        var target = column.AppendSpan(data.Length);
        var p = 0;
        var n = 0;
        while (p < data.Length)
        {
            target[n++] = (long)ReadVarint(data, ref p);
        }

        column.Shrink(data.Length - n);
    }

    private static void CopyLittleEndian<T>(ReadOnlySpan<byte> source, Span<T> target)
        where T : struct
    {
        if (BitConverter.IsLittleEndian)
        {
            source.CopyTo(MemoryMarshal.AsBytes(target));
            return;
        }

        throw new PlatformNotSupportedException("big-endian hosts are not supported");
    }

    private static (int Field, int Wire) Tag(ReadOnlySpan<byte> data, ref int p)
    {
        var tag = ReadVarint(data, ref p);
        Check(tag >> 3 is > 0 and <= int.MaxValue, "field number 0 or out of range");
        return ((int)(tag >> 3), (int)(tag & 7));
    }

    private static ReadOnlySpan<byte> Bytes(ReadOnlySpan<byte> data, ref int p)
    {
        var length = ReadVarint(data, ref p);
        Check(length <= (ulong)(data.Length - p), "a length-delimited field runs past the end of its message");
        var span = data.Slice(p, (int)length);
        p += (int)length;
        return span;
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> data, ref int p)
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            Check(p < data.Length, "a varint runs past the end of its message");
            var b = data[p++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        throw new InvalidDataException("a varint is longer than 10 bytes");
    }

    private static ulong ReadFixed64(ReadOnlySpan<byte> data, ref int p)
    {
        Check(data.Length - p >= 8, "a fixed64 runs past the end of its message");
        var value = BinaryPrimitives.ReadUInt64LittleEndian(data[p..]);
        p += 8;
        return value;
    }

    private static uint ReadFixed32(ReadOnlySpan<byte> data, ref int p)
    {
        Check(data.Length - p >= 4, "a fixed32 runs past the end of its message");
        var value = BinaryPrimitives.ReadUInt32LittleEndian(data[p..]);
        p += 4;
        return value;
    }

    /// <summary>Skips an unknown field, including (deprecated, still valid) groups up to their matching end tag.</summary>
    private static void Skip(ReadOnlySpan<byte> data, ref int p, int field, int wire, int depth = 0)
    {
        switch (wire)
        {
            case StartGroup:
                Check(depth < 64, "groups nested too deeply");
                while (true)
                {
                    var (inner, innerWire) = Tag(data, ref p);
                    if (innerWire == EndGroup)
                    {
                        Check(inner == field, "an end-group tag does not match its start");
                        return;
                    }

                    Skip(data, ref p, inner, innerWire, depth + 1);
                }

            case Varint:
                ReadVarint(data, ref p);
                break;
            case Fixed64:
                ReadFixed64(data, ref p);
                break;
            case LengthDelimited:
                Bytes(data, ref p);
                break;
            case Fixed32:
                ReadFixed32(data, ref p);
                break;
            default:
                throw new InvalidDataException($"malformed WriteRequest: wire type {wire} is not valid here");
        }
    }

    private static void Check(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidDataException($"malformed WriteRequest: {what}");
        }
    }
}
