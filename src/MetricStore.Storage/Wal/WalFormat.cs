using System.Buffers.Binary;
using System.Globalization;

namespace MetricStore.Storage.Wal;

/// <summary>
/// The WAL on disk. Segments <c>wal/{n:D20}.wal</c>, n increasing. A segment starts with the 8-byte
/// <see cref="SegmentMagic"/>, then frames:
/// <code>
/// u32 FrameMagic | u32 payload length | u32 CRC-32C of payload | payload
/// payload = u8 codec (0 raw, 1 LZ4) | u32 raw length | body (raw length bytes, or LZ4 of them)
/// </code>
/// All integers little-endian. The frame magic lets recovery tell a torn tail (nothing valid
/// follows) from corruption in the middle (valid frames follow, so acknowledged data is at stake).
/// </summary>
internal static class WalFormat
{
    public const ulong SegmentMagic = 0x0100_4C41_5753_4D; // "MSWAL\0\x01\0" little-endian
    public const int SegmentHeaderSize = 8;
    public const uint FrameMagic = 0x4C41_574D; // "MWAL"
    public const int FrameHeaderSize = 12;
    public const int PayloadHeaderSize = 5;
    public const byte CodecRaw = 0;
    public const byte CodecLz4 = 1;

    /// <summary>Largest payload accepted on read; a larger length field is corruption.</summary>
    public const int MaxPayloadSize = 256 * 1024 * 1024;

    public static string SegmentFileName(long number) => number.ToString("D20", CultureInfo.InvariantCulture) + ".wal";

    public static bool TryParseSegmentNumber(string fileName, out long number)
    {
        number = 0;
        return fileName.Length == 24 && fileName.EndsWith(".wal", StringComparison.Ordinal)
            && long.TryParse(fileName.AsSpan(0, 20), NumberStyles.None, CultureInfo.InvariantCulture, out number);
    }

    public static void WriteSegmentHeader(Span<byte> destination) => BinaryPrimitives.WriteUInt64LittleEndian(destination, SegmentMagic);
}
