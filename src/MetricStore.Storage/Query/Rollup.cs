using System.Buffers.Binary;
using System.IO.Compression;

namespace MetricStore.Storage.Query;

/// <summary>
/// Multi-resolution aggregates of one run of points sorted by step: level 0 has one
/// <see cref="Aggregate"/> per block of <see cref="BlockSize"/> points (the last block may be
/// shorter), each higher level one per <see cref="Fanout"/> blocks of the level below (full groups
/// only). A range of points costs two partial blocks scanned plus at most 2 × 31 block lookups per
/// level, whatever its length.
/// </summary>
internal sealed class Rollup
{
    public const int BlockShift = 10;
    public const int BlockSize = 1 << BlockShift;
    public const int FanoutShift = 5;
    public const int Fanout = 1 << FanoutShift;
    private const byte FormatVersion = 1;
    private const int BlockBytes = 13 * 8;

    private Rollup(Aggregate[][] levels, int valid, int count)
    {
        Levels = levels;
        Valid = valid;
        Count = count;
    }

    /// <summary>Levels[0] are blocks of BlockSize points; Levels[L] of BlockSize × Fanout^L.</summary>
    public Aggregate[][] Levels { get; }

    /// <summary>How many level-0 blocks hold final values (a head chunk's block in progress does not).</summary>
    public int Valid { get; }

    /// <summary>Points covered.</summary>
    public int Count { get; }

    /// <summary>Rollup of points [offset, offset + count) of sorted columns, with every level.</summary>
    public static Rollup Build(long[] steps, double[] values, long[] timestamps, int offset, int count)
    {
        var blocks = new Aggregate[(count + BlockSize - 1) >> BlockShift];
        for (var k = 0; k < blocks.Length; k++)
        {
            var from = offset + (k << BlockShift);
            blocks[k] = Aggregate.Scan(steps, values, timestamps, from, Math.Min(offset + count, from + BlockSize));
        }

        return FromBlocks(blocks, blocks.Length, count);
    }

    /// <summary>A rollup over level-0 blocks of which the first <paramref name="valid"/> are final.</summary>
    public static Rollup FromBlocks(Aggregate[] blocks, int valid, int count)
    {
        var levels = new List<Aggregate[]> { blocks };
        var below = blocks;
        var belowValid = valid;
        while (belowValid >= Fanout)
        {
            var level = new Aggregate[belowValid >> FanoutShift];
            for (var j = 0; j < level.Length; j++)
            {
                var a = below[j << FanoutShift];
                for (var i = 1; i < Fanout; i++)
                {
                    a.Add(below[(j << FanoutShift) + i]);
                }

                level[j] = a;
            }

            levels.Add(level);
            below = level;
            belowValid = level.Length;
        }

        return new Rollup([.. levels], valid, count);
    }

    /// <summary>The aggregate of points [lo, hi) of the sorted columns this rollup was built over.</summary>
    public Aggregate Range(long[] steps, double[] values, long[] timestamps, int lo, int hi)
    {
        if (hi - lo <= 2 * BlockSize)
        {
            return Aggregate.Scan(steps, values, timestamps, lo, hi);
        }

        // Block k covers [k * B, min((k + 1) * B, Count)); usable when final and inside [lo, hi).
        var first = (lo + BlockSize - 1) >> BlockShift;
        var end = hi == Count ? Valid : Math.Min(hi >> BlockShift, Valid);
        if (end > 0 && Math.Min(end << BlockShift, Count) > hi)
        {
            end--;
        }

        if (first >= end)
        {
            return Aggregate.Scan(steps, values, timestamps, lo, hi);
        }

        var a = Aggregate.Scan(steps, values, timestamps, lo, first << BlockShift);
        var k = first;
        while (k < end)
        {
            var level = 0;
            while (level + 1 < Levels.Length)
            {
                var size = 1 << ((level + 1) * FanoutShift);
                if ((k & (size - 1)) != 0 || k + size > end || (k >> ((level + 1) * FanoutShift)) >= Levels[level + 1].Length)
                {
                    break;
                }

                level++;
            }

            a.Add(Levels[level][k >> (level * FanoutShift)]);
            k += 1 << (level * FanoutShift);
        }

        a.Add(Aggregate.Scan(steps, values, timestamps, Math.Min(end << BlockShift, Count), hi));
        return a;
    }

    /// <summary>The aggregate of every point (all blocks must be final).</summary>
    public Aggregate Total()
    {
        var a = Aggregate.Empty;
        var covered = 0;
        for (var level = Levels.Length - 1; level >= 0; level--)
        {
            var shift = level * FanoutShift;
            var blocks = Levels[level];
            var n = level == 0 ? Valid : blocks.Length;
            for (var j = covered >> shift; j < n; j++)
            {
                a.Add(blocks[j]);
            }

            covered = n << shift;
        }

        return a;
    }

    /// <summary>Serializes the level-0 blocks of several row groups (higher levels are rebuilt on load).</summary>
    public static byte[] Serialize(IReadOnlyList<(int RowGroup, Rollup Rollup)> parts)
    {
        using var buffer = new MemoryStream();
        buffer.WriteByte(FormatVersion);
        using (var zip = new ZLibStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
        {
            Span<byte> header = stackalloc byte[12];
            BinaryPrimitives.WriteInt32LittleEndian(header, parts.Count);
            zip.Write(header[..4]);
            var block = new byte[BlockBytes];
            foreach (var (rowGroup, rollup) in parts)
            {
                BinaryPrimitives.WriteInt32LittleEndian(header, rowGroup);
                BinaryPrimitives.WriteInt32LittleEndian(header[4..], rollup.Count);
                BinaryPrimitives.WriteInt32LittleEndian(header[8..], rollup.Valid);
                zip.Write(header);
                for (var k = 0; k < rollup.Valid; k++)
                {
                    WriteBlock(block, rollup.Levels[0][k]);
                    zip.Write(block);
                }
            }
        }

        return buffer.ToArray();
    }

    public static Dictionary<int, Rollup> Deserialize(byte[] data)
    {
        if (data.Length == 0 || data[0] != FormatVersion)
        {
            throw new InvalidDataException($"rollup format {(data.Length == 0 ? "(empty)" : data[0].ToString(System.Globalization.CultureInfo.InvariantCulture))} is unknown to this build");
        }

        using var zip = new ZLibStream(new MemoryStream(data, 1, data.Length - 1), CompressionMode.Decompress);
        var header = new byte[12];
        zip.ReadExactly(header.AsSpan(0, 4));
        var parts = BinaryPrimitives.ReadInt32LittleEndian(header);
        var result = new Dictionary<int, Rollup>(parts);
        var block = new byte[BlockBytes];
        for (var p = 0; p < parts; p++)
        {
            zip.ReadExactly(header);
            var rowGroup = BinaryPrimitives.ReadInt32LittleEndian(header);
            var count = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
            var valid = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
            if (count < 0 || valid != (count + BlockSize - 1) >> BlockShift)
            {
                throw new InvalidDataException($"rollup of row group {rowGroup} has {valid} blocks for {count} points");
            }

            var blocks = new Aggregate[valid];
            for (var k = 0; k < valid; k++)
            {
                zip.ReadExactly(block);
                blocks[k] = ReadBlock(block);
            }

            result[rowGroup] = FromBlocks(blocks, valid, count);
        }

        return result;
    }

    private static void WriteBlock(Span<byte> b, in Aggregate a)
    {
        BinaryPrimitives.WriteInt64LittleEndian(b, a.Count);
        BinaryPrimitives.WriteInt64LittleEndian(b[8..], a.NanCount);
        BinaryPrimitives.WriteInt64LittleEndian(b[16..], a.InfCount);
        BinaryPrimitives.WriteDoubleLittleEndian(b[24..], a.Sum);
        BinaryPrimitives.WriteDoubleLittleEndian(b[32..], a.Min);
        BinaryPrimitives.WriteInt64LittleEndian(b[40..], a.MinStep);
        BinaryPrimitives.WriteDoubleLittleEndian(b[48..], a.Max);
        BinaryPrimitives.WriteInt64LittleEndian(b[56..], a.MaxStep);
        BinaryPrimitives.WriteInt64LittleEndian(b[64..], a.FirstStep);
        BinaryPrimitives.WriteDoubleLittleEndian(b[72..], a.First);
        BinaryPrimitives.WriteInt64LittleEndian(b[80..], a.LastStep);
        BinaryPrimitives.WriteDoubleLittleEndian(b[88..], a.Last);
        BinaryPrimitives.WriteInt64LittleEndian(b[96..], a.LastTimestamp);
    }

    private static Aggregate ReadBlock(ReadOnlySpan<byte> b) => new()
    {
        Count = BinaryPrimitives.ReadInt64LittleEndian(b),
        NanCount = BinaryPrimitives.ReadInt64LittleEndian(b[8..]),
        InfCount = BinaryPrimitives.ReadInt64LittleEndian(b[16..]),
        Sum = BinaryPrimitives.ReadDoubleLittleEndian(b[24..]),
        Min = BinaryPrimitives.ReadDoubleLittleEndian(b[32..]),
        MinStep = BinaryPrimitives.ReadInt64LittleEndian(b[40..]),
        Max = BinaryPrimitives.ReadDoubleLittleEndian(b[48..]),
        MaxStep = BinaryPrimitives.ReadInt64LittleEndian(b[56..]),
        FirstStep = BinaryPrimitives.ReadInt64LittleEndian(b[64..]),
        First = BinaryPrimitives.ReadDoubleLittleEndian(b[72..]),
        LastStep = BinaryPrimitives.ReadInt64LittleEndian(b[80..]),
        Last = BinaryPrimitives.ReadDoubleLittleEndian(b[88..]),
        LastTimestamp = BinaryPrimitives.ReadInt64LittleEndian(b[96..]),
    };
}
