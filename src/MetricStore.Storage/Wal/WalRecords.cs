using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using MetricStore.Core;

namespace MetricStore.Storage.Wal;

/// <summary>
/// Bodies of WAL frames. One frame per record:
/// <code>
/// SeriesDef: u8 1 | u32 series id | u16 n | n bytes UTF-8 canonical series key
/// Write:     u8 2 | u16 n | n bytes UTF-8 writer id | u64 seq | u32 series count | series*
///   series:  u32 series id | u32 points | u8 flags (1 float32 values, 2 shared timestamp, 4 arithmetic steps)
///            | steps: i64[points], or i64 first | i64 stride when flag 4
///            | f32 or f64 values[points] | i64 timestamps[points or 1]
/// </code>
/// Columns are copied as raw little-endian blocks. Steps that form an arithmetic run (the usual
/// step, step+1, ...) are stored as first and stride: one compare per point instead of 8 bytes.
/// </summary>
internal static class WalRecords
{
    public const byte SeriesDefType = 1;
    public const byte WriteType = 2;
    private const byte FlagFloat32 = 1;
    private const byte FlagSharedTimestamp = 2;
    private const byte FlagArithmeticSteps = 4;

    public static int EncodeSeriesDef(ref byte[] buffer, int seriesId, string canonicalKey)
    {
        var keyBytes = Encoding.UTF8.GetByteCount(canonicalKey);
        var length = 1 + 4 + 2 + keyBytes;
        Grow(ref buffer, length);
        var span = buffer.AsSpan();
        span[0] = SeriesDefType;
        BinaryPrimitives.WriteInt32LittleEndian(span[1..], seriesId);
        BinaryPrimitives.WriteUInt16LittleEndian(span[5..], (ushort)keyBytes);
        Encoding.UTF8.GetBytes(canonicalKey, span[7..]);
        return length;
    }

    public static int MeasureWrite(WriteBatch batch)
    {
        var length = 1 + 2 + Encoding.UTF8.GetByteCount(batch.WriterId) + 8 + 4;
        foreach (var s in batch.Series)
        {
            length += 4 + 4 + 1 + (s.Count * 8) + (s.Count * (s.Float32Origin ? 4 : 8)) + (s.SharedTimestamp ? 8 : s.Count * 8);
        }

        return length;
    }

    /// <summary>Encodes a write; <paramref name="seriesIds"/>[i] is the id of batch.Series[i]. Returns the bytes used.</summary>
    public static int EncodeWrite(ref byte[] buffer, WriteBatch batch, ReadOnlySpan<int> seriesIds)
    {
        var bound = MeasureWrite(batch);
        Grow(ref buffer, bound);
        var span = buffer.AsSpan(0, bound);
        span[0] = WriteType;
        var writerBytes = Encoding.UTF8.GetBytes(batch.WriterId, span[3..]);
        BinaryPrimitives.WriteUInt16LittleEndian(span[1..], (ushort)writerBytes);
        var p = 3 + writerBytes;
        BinaryPrimitives.WriteUInt64LittleEndian(span[p..], batch.Seq);
        BinaryPrimitives.WriteInt32LittleEndian(span[(p + 8)..], batch.Series.Count);
        p += 12;
        for (var i = 0; i < batch.Series.Count; i++)
        {
            var s = batch.Series[i];
            var n = s.Count;
            var steps = s.Steps.AsSpan(0, n);
            var arithmetic = IsArithmetic(steps, out var stride);
            BinaryPrimitives.WriteInt32LittleEndian(span[p..], seriesIds[i]);
            BinaryPrimitives.WriteInt32LittleEndian(span[(p + 4)..], n);
            span[p + 8] = (byte)((s.Float32Origin ? FlagFloat32 : 0) | (s.SharedTimestamp ? FlagSharedTimestamp : 0) | (arithmetic ? FlagArithmeticSteps : 0));
            p += 9;
            if (arithmetic)
            {
                BinaryPrimitives.WriteInt64LittleEndian(span[p..], steps[0]);
                BinaryPrimitives.WriteInt64LittleEndian(span[(p + 8)..], stride);
                p += 16;
            }
            else
            {
                p += Copy(MemoryMarshal.AsBytes(steps), span[p..]);
            }
            if (s.Float32Origin)
            {
                ColumnKernels.Narrow(s.Values.AsSpan(0, n), MemoryMarshal.Cast<byte, float>(span.Slice(p, n * 4)));

                p += n * 4;
            }
            else
            {
                p += Copy(MemoryMarshal.AsBytes(s.Values.AsSpan(0, n)), span[p..]);
            }

            p += Copy(MemoryMarshal.AsBytes(s.Timestamps.AsSpan(0, s.SharedTimestamp ? 1 : n)), span[p..]);
        }

        return p;
    }

    /// <summary>True when steps[i] == steps[0] + i * stride for every i (and there are at least 2).</summary>
    internal static bool IsArithmetic(ReadOnlySpan<long> steps, out long stride)
    {
        stride = 0;
        if (steps.Length < 2)
        {
            return false;
        }

        stride = steps[1] - steps[0];
        var expected = steps[0];
        foreach (var step in steps)
        {
            if (step != expected)
            {
                return false;
            }

            expected += stride;
        }

        return true;
    }

    /// <summary>
    /// Replays a write record into the heads without intermediate arrays: returns false (and
    /// applies nothing) when the writer already has this seq. <paramref name="head"/> maps a series
    /// id to its head.
    /// </summary>
    public static bool ReplayWrite(ReadOnlySpan<byte> body, Dictionary<string, ulong> seqs, Func<int, Head.SeriesHead> head, out long points)
    {
        points = 0;
        var writerBytes = BinaryPrimitives.ReadUInt16LittleEndian(body[1..]);
        var writer = Encoding.UTF8.GetString(body.Slice(3, writerBytes));
        var p = 3 + writerBytes;
        var seq = BinaryPrimitives.ReadUInt64LittleEndian(body[p..]);
        if (seqs.TryGetValue(writer, out var last) && seq <= last)
        {
            return false;
        }

        seqs[writer] = seq;
        var count = BinaryPrimitives.ReadInt32LittleEndian(body[(p + 8)..]);
        p += 12;
        for (var i = 0; i < count; i++)
        {
            var id = BinaryPrimitives.ReadInt32LittleEndian(body[p..]);
            var n = BinaryPrimitives.ReadInt32LittleEndian(body[(p + 4)..]);
            var flags = body[p + 8];
            p += 9;
            ReadOnlySpan<byte> rawSteps = default;
            long first = 0, stride = 0;
            if ((flags & FlagArithmeticSteps) != 0)
            {
                first = BinaryPrimitives.ReadInt64LittleEndian(body[p..]);
                stride = BinaryPrimitives.ReadInt64LittleEndian(body[(p + 8)..]);
                p += 16;
            }
            else
            {
                rawSteps = body.Slice(p, n * 8);
                p += n * 8;
            }

            var float32 = (flags & FlagFloat32) != 0;
            var rawValues = body.Slice(p, n * (float32 ? 4 : 8));
            p += rawValues.Length;
            ReadOnlySpan<byte> rawTimestamps = default;
            long shared = 0;
            if ((flags & FlagSharedTimestamp) != 0)
            {
                shared = BinaryPrimitives.ReadInt64LittleEndian(body[p..]);
                p += 8;
            }
            else
            {
                rawTimestamps = body.Slice(p, n * 8);
                p += n * 8;
            }

            head(id).AppendEncoded(n, rawSteps, first, stride, rawValues, float32, rawTimestamps, shared);
            points += n;
        }

        return true;
    }

    public static (int SeriesId, string CanonicalKey) DecodeSeriesDef(ReadOnlySpan<byte> body)
    {
        var id = BinaryPrimitives.ReadInt32LittleEndian(body[1..]);
        var length = BinaryPrimitives.ReadUInt16LittleEndian(body[5..]);
        return (id, Encoding.UTF8.GetString(body.Slice(7, length)));
    }

    private static int Copy(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        source.CopyTo(destination);
        return source.Length;
    }

    private static void Grow(ref byte[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new byte[Math.Max(length, buffer.Length * 2)];
        }
    }
}
