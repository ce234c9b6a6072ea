using System.Buffers.Binary;
using K4os.Compression.LZ4;
using MetricStore.Core;
using Microsoft.Win32.SafeHandles;

namespace MetricStore.Storage.Wal;

/// <summary>
/// Appends frames to the current WAL segment. Single-threaded (the engine's writer loop owns it).
/// Frames of one group commit are built in one buffer and written with one write call; durability
/// is <see cref="Flush"/> (fsync), called once per group in sync mode.
/// </summary>
internal sealed class WalSegmentWriter : IDisposable
{
    private readonly string _directory;
    private readonly long _segmentSize;
    private readonly int _compressAbove;
    private SafeFileHandle _handle;
    private long _position;
    private byte[] _group = new byte[1 << 20];
    private int _groupLength;
    private byte[] _scratch = new byte[1 << 16];

    public WalSegmentWriter(string directory, long firstSegmentNumber, long segmentSize, int compressAbove)
    {
        _directory = directory;
        _segmentSize = segmentSize;
        _compressAbove = compressAbove;
        SegmentNumber = firstSegmentNumber;
        _handle = CreateSegment(firstSegmentNumber);
        _position = WalFormat.SegmentHeaderSize;
    }

    public long SegmentNumber { get; private set; }

    /// <summary>Bytes written to disk since start, frames and headers.</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Bytes of payload before compression, since start.</summary>
    public long RawBytes { get; private set; }

    /// <summary>Adds a frame carrying <paramref name="body"/> to the pending group (nothing is written yet).</summary>
    public void Append(ReadOnlySpan<byte> body)
    {
        var codec = WalFormat.CodecRaw;
        var stored = body;
        if (body.Length >= _compressAbove)
        {
            var bound = LZ4Codec.MaximumOutputSize(body.Length);
            if (_scratch.Length < bound)
            {
                _scratch = new byte[Math.Max(bound, _scratch.Length * 2)];
            }

            var compressed = LZ4Codec.Encode(body, _scratch, LZ4Level.L00_FAST);
            // Keep LZ4 only where it pays: at least 1/8 smaller.
            if (compressed > 0 && compressed < body.Length - (body.Length >> 3))
            {
                codec = WalFormat.CodecLz4;
                stored = _scratch.AsSpan(0, compressed);
            }
        }

        var payloadLength = WalFormat.PayloadHeaderSize + stored.Length;
        var frameLength = WalFormat.FrameHeaderSize + payloadLength;
        EnsureGroupCapacity(frameLength);
        var frame = _group.AsSpan(_groupLength, frameLength);
        var payload = frame[WalFormat.FrameHeaderSize..];
        payload[0] = codec;
        BinaryPrimitives.WriteInt32LittleEndian(payload[1..], body.Length);
        stored.CopyTo(payload[WalFormat.PayloadHeaderSize..]);
        BinaryPrimitives.WriteUInt32LittleEndian(frame, WalFormat.FrameMagic);
        BinaryPrimitives.WriteInt32LittleEndian(frame[4..], payloadLength);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[8..], Crc32C.Compute(payload));
        _groupLength += frameLength;
        RawBytes += body.Length;
    }

    /// <summary>Writes the pending group in one call; rolls to a new segment first when the current one is full.</summary>
    public void WriteGroup()
    {
        if (_groupLength == 0)
        {
            return;
        }

        if (_position > WalFormat.SegmentHeaderSize && _position + _groupLength > _segmentSize)
        {
            Roll();
        }

        RandomAccess.Write(_handle, _group.AsSpan(0, _groupLength), _position);
        _position += _groupLength;
        BytesWritten += _groupLength;
        _groupLength = 0;
    }

    /// <summary>fsync: everything written so far survives power loss once this returns.</summary>
    public void Flush() => RandomAccess.FlushToDisk(_handle);

    /// <summary>Closes the current segment and starts the next; returns the new segment's number.</summary>
    public long Roll()
    {
        RandomAccess.FlushToDisk(_handle);
        _handle.Dispose();
        SegmentNumber++;
        _handle = CreateSegment(SegmentNumber);
        _position = WalFormat.SegmentHeaderSize;
        return SegmentNumber;
    }

    public void Dispose()
    {
        if (!_handle.IsClosed)
        {
            RandomAccess.FlushToDisk(_handle);
            _handle.Dispose();
        }
    }

    private void EnsureGroupCapacity(int extra)
    {
        if (_groupLength + extra > _group.Length)
        {
            Array.Resize(ref _group, Math.Max(_group.Length * 2, _groupLength + extra));
        }
    }

    private SafeFileHandle CreateSegment(long number)
    {
        var path = Path.Combine(_directory, WalFormat.SegmentFileName(number));
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        Span<byte> header = stackalloc byte[WalFormat.SegmentHeaderSize];
        WalFormat.WriteSegmentHeader(header);
        RandomAccess.Write(handle, header, 0);
        RandomAccess.FlushToDisk(handle);
        DirectorySync.Sync(_directory);
        return handle;
    }
}
