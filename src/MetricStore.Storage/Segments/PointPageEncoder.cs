using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ZstdSharp;

namespace MetricStore.Storage.Segments;

/// <summary>
/// Encodes the column chunks of point files, the mirror of <see cref="PointPageDecoder"/>: one v1
/// data page per column chunk, PLAIN int32, DELTA_BINARY_PACKED int64 and BYTE_STREAM_SPLIT float
/// or double, then zstd at level 1 (or none), into scratch buffers it keeps. Parquet.Net allocated
/// each page's encoded bytes, its zstd output (a compress bound of the page, 4 MB for a million
/// floats) and, in our writer, the float and series-id columns it was given: most of the server's
/// large-object garbage under ingest (an allocation trace in docs/benchmarks.md). Encoders are
/// pooled process-wide (<see cref="Rent"/>): a seal and a compaction may each hold one.
/// </summary>
internal sealed class PointPageEncoder : IDisposable
{
    /// <summary>Values per DELTA_BINARY_PACKED block and per miniblock (4 miniblocks a block), as parquet-mr and Parquet.Net write them.</summary>
    private const int BlockSize = 128;
    private const int MiniblockSize = 32;
    private const int MaxPooled = 4;

    private static readonly ConcurrentBag<PointPageEncoder> s_pool = [];

    private readonly Compressor _zstd = new(1);
    private readonly ThriftCompactWriter _header = new(64);
    private readonly ulong[] _deltas = new ulong[BlockSize];
    private readonly long[] _window = new long[BlockSize + 1]; // a block's values when they straddle two parts
    private byte[] _page = new byte[64 * 1024];
    private byte[] _compressed = new byte[64 * 1024];

    /// <summary>A buffer for the file's footer, kept with the encoder (the rollups in it are half a megabyte for a large file).</summary>
    public ThriftCompactWriter Footer { get; } = new(64 * 1024);

    /// <summary>A column chunk as written: where, how large, how encoded.</summary>
    public readonly record struct Chunk(long Offset, long CompressedSize, long UncompressedSize, int Values, int Encoding);

    // Parquet's encodings, as Parquet.Meta (parquet.thrift) numbers them.
    public const int Plain = (int)Parquet.Meta.Encoding.PLAIN;
    public const int Rle = (int)Parquet.Meta.Encoding.RLE;
    public const int DeltaBinaryPacked = (int)Parquet.Meta.Encoding.DELTA_BINARY_PACKED;
    public const int ByteStreamSplit = (int)Parquet.Meta.Encoding.BYTE_STREAM_SPLIT;

    /// <summary>An encoder from the pool (a new one when it is empty); give it back with <see cref="Return"/>.</summary>
    public static PointPageEncoder Rent() => s_pool.TryTake(out var encoder) ? encoder : new PointPageEncoder();

    /// <summary>
    /// The most footer buffer a pooled encoder keeps. A compaction into a file of hundreds of
    /// millions of points writes a footer of 10–15 MB (its rollups), and two pooled encoders held
    /// such buffers for good: 30 MB of a heap dump under the mixed load (docs/benchmarks.md, tenth
    /// session). Such footers are rare; the page buffers, which every seal uses, are kept.
    /// </summary>
    internal const int MaxKeptFooterBytes = 1 << 20;

    public static void Return(PointPageEncoder encoder)
    {
        encoder.Footer.Shrink(MaxKeptFooterBytes);
        if (s_pool.Count < MaxPooled)
        {
            s_pool.Add(encoder);
        }
        else
        {
            encoder.Dispose();
        }
    }

    public void Dispose() => _zstd.Dispose();

    /// <summary>A PLAIN int32 chunk of <paramref name="count"/> copies of <paramref name="value"/> (the series_id column).</summary>
    public ValueTask<Chunk> WriteConstantInt32Async(Stream stream, long offset, int value, int count, bool compress, CancellationToken cancellationToken)
    {
        var page = Page(4 * count);
        MemoryMarshal.Cast<byte, int>(page).Fill(BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value));
        return WritePageAsync(stream, offset, page.Length, count, Plain, compress, cancellationToken);
    }

    /// <summary>A DELTA_BINARY_PACKED int64 chunk of <paramref name="parts"/> one after the other (<paramref name="count"/> values in all).</summary>
    public ValueTask<Chunk> WriteInt64Async(Stream stream, long offset, IReadOnlyList<ReadOnlyMemory<long>> parts, int count, bool compress, CancellationToken cancellationToken)
    {
        var length = EncodeDeltaBinaryPacked(parts, Page(MaxDeltaBinaryPackedBytes(count)));
        return WritePageAsync(stream, offset, length, count, DeltaBinaryPacked, compress, cancellationToken);
    }

    /// <summary>
    /// A BYTE_STREAM_SPLIT chunk of the values of <paramref name="parts"/>, one after the other
    /// (<paramref name="count"/> in all), as float32 (<paramref name="float32"/>, each exactly a
    /// float) or float64.
    /// </summary>
    public ValueTask<Chunk> WriteValuesAsync(Stream stream, long offset, IReadOnlyList<ReadOnlyMemory<double>> parts, int count, bool float32, bool compress, CancellationToken cancellationToken)
    {
        var page = Page((float32 ? 4 : 8) * count);
        var at = 0;
        foreach (var part in parts)
        {
            if (float32)
            {
                EncodeByteStreamSplitFloat(part.Span, page, count, at);
            }
            else
            {
                EncodeByteStreamSplitDouble(part.Span, page, count, at);
            }

            at += part.Length;
        }

        if (at != count)
        {
            throw new ArgumentException($"parts of {at} values for a chunk of {count}", nameof(count));
        }

        return WritePageAsync(stream, offset, page.Length, count, ByteStreamSplit, compress, cancellationToken);
    }

    /// <summary>The most bytes DELTA_BINARY_PACKED takes for <paramref name="count"/> int64 values.</summary>
    internal static int MaxDeltaBinaryPackedBytes(int count) => 40 + (((count / BlockSize) + 1) * (10 + 4 + (BlockSize * 8)));

    /// <summary>
    /// DELTA_BINARY_PACKED (parquet-format Encodings.md): a header (128 values per block, 4
    /// miniblocks, the value count, the first value), then per block of 128 deltas the smallest
    /// delta and each miniblock's bit width, then the miniblocks: each delta minus the smallest,
    /// bit-packed from the least significant bit, 32 to a miniblock. Differences wrap, so any
    /// int64 sequence round-trips. A last block's unused miniblocks have width 0 and no bytes.
    /// </summary>
    /// <remarks>
    /// The values are the parts one after the other, so a seal encodes a series' head chunks where
    /// they are instead of copying them into one array first. A block's values are read in place,
    /// or copied (129 of them) when they straddle two parts.
    /// </remarks>
    internal int EncodeDeltaBinaryPacked(IReadOnlyList<ReadOnlyMemory<long>> parts, Span<byte> output)
    {
        var total = 0;
        foreach (var part in parts)
        {
            total += part.Length;
        }

        var values = new PartCursor<long>(parts);
        var position = 0;
        Uleb(output, ref position, BlockSize);
        Uleb(output, ref position, BlockSize / MiniblockSize);
        Uleb(output, ref position, (ulong)total);
        Uleb(output, ref position, ZigZag(total == 0 ? 0 : values.Window(0, 1, _window)[0]));
        var deltas = _deltas.AsSpan();
        for (var start = 1; start < total; start += BlockSize)
        {
            var n = Math.Min(BlockSize, total - start);
            var (min, max) = Deltas(values.Window(start - 1, n + 1, _window), deltas[..n]);

            Uleb(output, ref position, ZigZag(min));
            var widthsAt = position;
            position += BlockSize / MiniblockSize;
            if (min == max)
            {
                // Every delta the same (steps one apart, a timestamp shared by a request): every
                // miniblock has width 0 and no bytes, which is what the loop below would write.
                output.Slice(widthsAt, BlockSize / MiniblockSize).Clear();
                continue;
            }

            for (var m = 0; m < BlockSize / MiniblockSize; m++)
            {
                var from = m * MiniblockSize;
                if (from >= n)
                {
                    output[widthsAt + m] = 0;
                    continue;
                }

                var take = Math.Min(MiniblockSize, n - from);
                var any = SubtractAll(deltas.Slice(from, take), (ulong)min);

                var width = 64 - BitOperations.LeadingZeroCount(any);
                output[widthsAt + m] = (byte)width;
                deltas[(from + take)..(from + MiniblockSize)].Clear(); // a short last miniblock is padded with zeros
                position += Pack(deltas.Slice(from, MiniblockSize), width, output[position..]);
            }
        }

        return position;
    }

    /// <summary>Writes each value's difference from the one before it (wrapping) and returns the smallest and the largest; <paramref name="values"/> is one longer than <paramref name="deltas"/>.</summary>
    internal static (long Min, long Max) Deltas(ReadOnlySpan<long> values, Span<ulong> deltas)
    {
        var min = long.MaxValue;
        var max = long.MinValue;
        var i = 0;
        if (Vector256.IsHardwareAccelerated && deltas.Length >= Vector256<long>.Count)
        {
            ref var v = ref MemoryMarshal.GetReference(values);
            ref var d = ref MemoryMarshal.GetReference(MemoryMarshal.Cast<ulong, long>(deltas));
            var smallest = Vector256.Create(long.MaxValue);
            var largest = Vector256.Create(long.MinValue);
            for (; i <= deltas.Length - Vector256<long>.Count; i += Vector256<long>.Count)
            {
                var delta = Vector256.LoadUnsafe(ref v, (nuint)(i + 1)) - Vector256.LoadUnsafe(ref v, (nuint)i);
                delta.StoreUnsafe(ref d, (nuint)i);
                smallest = Vector256.Min(smallest, delta);
                largest = Vector256.Max(largest, delta);
            }

            for (var lane = 0; lane < Vector256<long>.Count; lane++)
            {
                min = Math.Min(min, smallest.GetElement(lane));
                max = Math.Max(max, largest.GetElement(lane));
            }
        }

        for (; i < deltas.Length; i++)
        {
            var delta = unchecked(values[i + 1] - values[i]);
            deltas[i] = (ulong)delta;
            min = Math.Min(min, delta);
            max = Math.Max(max, delta);
        }

        return (min, max);
    }

    /// <summary>Subtracts <paramref name="min"/> from every delta (wrapping) and returns the OR of the results (its highest bit is the width).</summary>
    private static ulong SubtractAll(Span<ulong> deltas, ulong min)
    {
        ulong any = 0;
        var i = 0;
        if (Vector256.IsHardwareAccelerated && deltas.Length >= Vector256<ulong>.Count)
        {
            ref var d = ref MemoryMarshal.GetReference(deltas);
            var subtrahend = Vector256.Create(min);
            var bits = Vector256<ulong>.Zero;
            for (; i <= deltas.Length - Vector256<ulong>.Count; i += Vector256<ulong>.Count)
            {
                var x = Vector256.LoadUnsafe(ref d, (nuint)i) - subtrahend;
                x.StoreUnsafe(ref d, (nuint)i);
                bits |= x;
            }

            for (var lane = 0; lane < Vector256<ulong>.Count; lane++)
            {
                any |= bits.GetElement(lane);
            }
        }

        for (; i < deltas.Length; i++)
        {
            deltas[i] = unchecked(deltas[i] - min);
            any |= deltas[i];
        }

        return any;
    }

    /// <summary>BYTE_STREAM_SPLIT of the values as float32: byte k of value i at k × n + i.</summary>
    internal static void EncodeByteStreamSplitFloat(ReadOnlySpan<double> values, Span<byte> output) => EncodeByteStreamSplitFloat(values, output, values.Length, 0);

    /// <summary>
    /// BYTE_STREAM_SPLIT as float32 of values <paramref name="at"/> onwards of a chunk of
    /// <paramref name="total"/>: byte k of value i of <paramref name="values"/> at k × total + at + i.
    /// </summary>
    internal static void EncodeByteStreamSplitFloat(ReadOnlySpan<double> values, Span<byte> output, int total, int at)
    {
        var n = values.Length;
        var b0 = output.Slice(at, n);
        var b1 = output.Slice(total + at, n);
        var b2 = output.Slice((2 * total) + at, n);
        var b3 = output.Slice((3 * total) + at, n);
        var i = 0;
        if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            // Four values at a time: narrowed to float32, their bytes regrouped so that the k-th
            // uint of the shuffle holds byte k of each, which is four bytes of stream k.
            ref var source = ref MemoryMarshal.GetReference(values);
            var byByte = Vector128.Create((byte)0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            for (; i <= n - 4; i += 4)
            {
                var floats = Vector128.Narrow(Vector128.LoadUnsafe(ref source, (nuint)i), Vector128.LoadUnsafe(ref source, (nuint)(i + 2)));
                var streams = Vector128.Shuffle(floats.AsByte(), byByte).AsUInt32();
                BinaryPrimitives.WriteUInt32LittleEndian(b0[i..], streams.GetElement(0));
                BinaryPrimitives.WriteUInt32LittleEndian(b1[i..], streams.GetElement(1));
                BinaryPrimitives.WriteUInt32LittleEndian(b2[i..], streams.GetElement(2));
                BinaryPrimitives.WriteUInt32LittleEndian(b3[i..], streams.GetElement(3));
            }
        }

        for (; i < n; i++)
        {
            var bits = BitConverter.SingleToUInt32Bits((float)values[i]);
            b0[i] = (byte)bits;
            b1[i] = (byte)(bits >> 8);
            b2[i] = (byte)(bits >> 16);
            b3[i] = (byte)(bits >> 24);
        }
    }

    /// <summary>BYTE_STREAM_SPLIT of float64 values: byte k of value i at k × n + i.</summary>
    internal static void EncodeByteStreamSplitDouble(ReadOnlySpan<double> values, Span<byte> output) => EncodeByteStreamSplitDouble(values, output, values.Length, 0);

    /// <summary>BYTE_STREAM_SPLIT of float64 values <paramref name="at"/> onwards of a chunk of <paramref name="total"/>: byte k of value i at k × total + at + i.</summary>
    internal static void EncodeByteStreamSplitDouble(ReadOnlySpan<double> values, Span<byte> output, int total, int at)
    {
        for (var i = 0; i < values.Length; i++)
        {
            var bits = BitConverter.DoubleToUInt64Bits(values[i]);
            for (var k = 0; k < 8; k++)
            {
                output[(k * total) + at + i] = (byte)(bits >> (8 * k));
            }
        }
    }

    /// <summary>Bit-packs 32 values of <paramref name="width"/> bits, least significant bit first: 4 × width bytes.</summary>
    private static int Pack(ReadOnlySpan<ulong> values, int width, Span<byte> output)
    {
        if (width == 0)
        {
            return 0;
        }

        var written = 0;
        ulong word = 0;
        var bits = 0;
        foreach (var value in values)
        {
            word |= value << bits; // a shift by 64 or more is masked in C#; bits stays below 64 here
            if (bits + width >= 64)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(output[written..], word);
                written += 8;
                word = bits == 0 ? 0 : value >> (64 - bits);
                bits = bits + width - 64;
            }
            else
            {
                bits += width;
            }
        }

        for (; bits > 0; bits -= 8)
        {
            output[written++] = (byte)word;
            word >>= 8;
        }

        return written;
    }

    private static ulong ZigZag(long value) => ThriftCompactWriter.ZigZag(value);

    private static void Uleb(Span<byte> output, ref int position, ulong value) => position += ThriftCompactWriter.WriteVarint(output[position..], value);

    /// <summary>The page buffer, at least <paramref name="bytes"/> long, sliced to that length.</summary>
    private Span<byte> Page(int bytes)
    {
        Grow(ref _page, bytes);
        return _page.AsSpan(0, bytes);
    }

    /// <summary>
    /// Grows a scratch buffer to the next whole MiB above <paramref name="bytes"/>: a 1M-row group
    /// asks for at most about 8.5 MB (the delta encoding's bound), which doubling would have made 16.
    /// </summary>
    private static void Grow(ref byte[] buffer, int bytes)
    {
        if (buffer.Length < bytes)
        {
            buffer = new byte[(int)Math.Min(Array.MaxLength, (bytes + (1L << 20) - 1) & ~((1L << 20) - 1))];
        }
    }

    /// <summary>Compresses the page of <paramref name="length"/> bytes in the page buffer and writes it with its header at <paramref name="offset"/>.</summary>
    private async ValueTask<Chunk> WritePageAsync(Stream stream, long offset, int length, int values, int encoding, bool compress, CancellationToken cancellationToken)
    {
        ReadOnlyMemory<byte> body = _page.AsMemory(0, length);
        if (compress)
        {
            Grow(ref _compressed, Compressor.GetCompressBound(length));

            body = _compressed.AsMemory(0, _zstd.Wrap(_page.AsSpan(0, length), _compressed));
        }

        _header.Reset();
        _header.WriteI32(1, (int)Parquet.Meta.PageType.DATA_PAGE); // type
        _header.WriteI32(2, length); // uncompressed_page_size
        _header.WriteI32(3, body.Length); // compressed_page_size
        _header.BeginStruct(5); // data_page_header
        _header.WriteI32(1, values); // num_values
        _header.WriteI32(2, encoding);
        _header.WriteI32(3, Rle); // definition_level_encoding (required columns: no levels written)
        _header.WriteI32(4, Rle); // repetition_level_encoding
        _header.EndStruct();
        _header.End();
        var headerBytes = _header.Length;
        await stream.WriteAsync(_header.Written, cancellationToken);
        await stream.WriteAsync(body, cancellationToken);
        return new Chunk(offset, headerBytes + body.Length, headerBytes + length, values, encoding);
    }
}
