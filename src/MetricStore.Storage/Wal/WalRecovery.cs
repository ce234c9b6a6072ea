using System.Buffers;
using System.Buffers.Binary;
using K4os.Compression.LZ4;

namespace MetricStore.Storage.Wal;

/// <summary>The WAL holds damage that recovery must not paper over: valid frames follow a bad one.</summary>
public sealed class WalCorruptionException(string message) : IOException(message);

/// <summary>What recovery found, for the startup log.</summary>
internal sealed record WalRecoveryReport(int Segments, long Frames, long Bytes, long LastSegmentNumber, string? TruncatedTail);

/// <summary>
/// Replays WAL segments in order, handing each frame's body to a callback. A bad frame with no
/// valid frame after it in the last segment is a torn tail (a write that never completed, so never
/// acknowledged): the file is truncated there and the loss is reported. A bad frame with valid
/// frames after it, or in an earlier segment, is corruption of acknowledged data: recovery stops
/// with <see cref="WalCorruptionException"/> and changes nothing.
/// </summary>
internal static class WalRecovery
{
    public delegate void FrameHandler(ReadOnlySpan<byte> body, long segmentNumber);

    public static IReadOnlyList<long> ListSegments(string directory)
    {
        var numbers = new List<long>();
        foreach (var path in Directory.EnumerateFiles(directory, "*.wal"))
        {
            if (WalFormat.TryParseSegmentNumber(Path.GetFileName(path), out var n))
            {
                numbers.Add(n);
            }
        }

        numbers.Sort();
        return numbers;
    }

    /// <summary>Replays segments numbered <paramref name="fromSegment"/> and up (older ones are covered by sealed segments).</summary>
    public static WalRecoveryReport Replay(string directory, long fromSegment, FrameHandler onFrame)
    {
        var segments = ListSegments(directory).Where(n => n >= fromSegment).ToList();
        long frames = 0, bytes = 0;
        string? truncated = null;
        for (var i = 0; i < segments.Count; i++)
        {
            var path = Path.Combine(directory, WalFormat.SegmentFileName(segments[i]));
            var isLast = i == segments.Count - 1;
            var (segmentFrames, validEnd, damage) = ReplaySegment(path, segments[i], onFrame);
            frames += segmentFrames;
            bytes += validEnd;
            if (damage is null)
            {
                continue;
            }

            var length = new FileInfo(path).Length;
            if (!isLast)
            {
                throw new WalCorruptionException(
                    $"WAL segment {path} is damaged at byte {validEnd} ({damage}) and newer segments follow, so acknowledged data may be lost; " +
                    "the data directory was left unchanged: restore it from a backup or remove the damaged segment deliberately");
            }

            if (HasValidFrameAfter(path, validEnd))
            {
                throw new WalCorruptionException(
                    $"WAL segment {path} is damaged at byte {validEnd} ({damage}) but valid records follow, so acknowledged data is at stake; " +
                    "the data directory was left unchanged: restore it from a backup or remove the damaged segment deliberately");
            }

            using (var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite))
            {
                RandomAccess.SetLength(handle, Math.Max(validEnd, WalFormat.SegmentHeaderSize));
                RandomAccess.FlushToDisk(handle);
            }

            truncated = $"{Path.GetFileName(path)}: dropped {length - validEnd} bytes of torn tail at byte {validEnd} ({damage}); only unacknowledged writes can be there";
        }

        return new WalRecoveryReport(segments.Count, frames, bytes, segments.Count == 0 ? 0 : segments[^1], truncated);
    }

    /// <summary>Returns frames replayed, the end of the last valid frame, and what was wrong after it (null when clean).</summary>
    private static (long Frames, long ValidEnd, string? Damage) ReplaySegment(string path, long number, FrameHandler onFrame)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var length = RandomAccess.GetLength(handle);
        Span<byte> header = stackalloc byte[WalFormat.FrameHeaderSize];
        if (length < WalFormat.SegmentHeaderSize)
        {
            return (0, 0, "segment header is incomplete");
        }

        RandomAccess.Read(handle, header[..WalFormat.SegmentHeaderSize], 0);
        if (BinaryPrimitives.ReadUInt64LittleEndian(header) != WalFormat.SegmentMagic)
        {
            return (0, 0, "not a MetricStore WAL segment header");
        }

        long position = WalFormat.SegmentHeaderSize;
        long frames = 0;
        var payload = ArrayPool<byte>.Shared.Rent(1 << 20);
        var body = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            while (position < length)
            {
                if (length - position < WalFormat.FrameHeaderSize)
                {
                    return (frames, position, "incomplete frame header");
                }

                RandomAccess.Read(handle, header, position);
                if (BinaryPrimitives.ReadUInt32LittleEndian(header) != WalFormat.FrameMagic)
                {
                    return (frames, position, "frame magic missing");
                }

                var payloadLength = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
                if (payloadLength < WalFormat.PayloadHeaderSize || payloadLength > WalFormat.MaxPayloadSize)
                {
                    return (frames, position, $"frame length {payloadLength} is impossible");
                }

                if (length - position - WalFormat.FrameHeaderSize < payloadLength)
                {
                    return (frames, position, "incomplete frame");
                }

                Grow(ref payload, payloadLength);
                var span = payload.AsSpan(0, payloadLength);
                RandomAccess.Read(handle, span, position + WalFormat.FrameHeaderSize);
                if (Crc32C.Compute(span) != BinaryPrimitives.ReadUInt32LittleEndian(header[8..]))
                {
                    return (frames, position, "CRC mismatch");
                }

                var rawLength = BinaryPrimitives.ReadInt32LittleEndian(span[1..]);
                var stored = span[WalFormat.PayloadHeaderSize..];
                if (span[0] == WalFormat.CodecLz4)
                {
                    Grow(ref body, rawLength);
                    var decoded = LZ4Codec.Decode(stored, body.AsSpan(0, rawLength));
                    if (decoded != rawLength)
                    {
                        return (frames, position, "LZ4 body does not decode to its length");
                    }

                    onFrame(body.AsSpan(0, rawLength), number);
                }
                else
                {
                    onFrame(stored, number);
                }

                frames++;
                position += WalFormat.FrameHeaderSize + payloadLength;
            }

            return (frames, position, null);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(payload);
            ArrayPool<byte>.Shared.Return(body);
        }
    }

    /// <summary>True when a frame with a good magic, length and CRC starts anywhere after <paramref name="from"/>.</summary>
    private static bool HasValidFrameAfter(string path, long from)
    {
        var bytes = File.ReadAllBytes(path);
        for (var p = (int)from + 1; p + WalFormat.FrameHeaderSize <= bytes.Length; p++)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(p)) != WalFormat.FrameMagic)
            {
                continue;
            }

            var payloadLength = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(p + 4));
            if (payloadLength < WalFormat.PayloadHeaderSize || p + WalFormat.FrameHeaderSize + (long)payloadLength > bytes.Length)
            {
                continue;
            }

            var crc = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(p + 8));
            if (Crc32C.Compute(bytes.AsSpan(p + WalFormat.FrameHeaderSize, payloadLength)) == crc)
            {
                return true;
            }
        }

        return false;
    }

    private static void Grow(ref byte[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = ArrayPool<byte>.Shared.Rent(length);
        }
    }
}
