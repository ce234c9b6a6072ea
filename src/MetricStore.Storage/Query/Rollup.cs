using System.Buffers.Binary;
using System.IO.Compression;

namespace MetricStore.Storage.Query;

/// <summary>
/// Multi-resolution aggregates of one run of points sorted by step: level 0 has one
/// <see cref="Aggregate"/> per block of 2^BlockShift points (the last block may be shorter), each
/// higher level one per 2^FanoutShift blocks of the level below (full groups only). A range of
/// points costs two partial blocks scanned plus at most 2 × (fanout − 1) lookups per level,
/// whatever its length.
/// </summary>
/// <remarks>
/// Two shapes are used. Segment footers keep <see cref="Coarse"/> rollups (1024-point blocks,
/// fanout 32: about 0.1 byte per point on disk) that answer totals and whole buckets without
/// reading points. Points in memory (head chunks, decoded row groups) get <see cref="Fine"/>
/// rollups (64-point blocks, fanout 16), so a bucket edge scans at most 63 points on each side.
/// </remarks>
internal sealed class Rollup
{
    public const int BlockShift = 10;
    public const int BlockSize = 1 << BlockShift;
    public const int FanoutShift = 5;
    public const int FineBlockShift = 6;
    public const int FineFanoutShift = 4;
    private const byte FormatVersion = 1;
    private const int BlockBytes = 13 * 8;

    public Rollup(int blockShift, int fanoutShift, Aggregate[][] levels, int valid, int count)
    {
        Shift = blockShift;
        Fanout = fanoutShift;
        Levels = levels;
        Valid = valid;
        Count = count;
    }

    public static (int BlockShift, int FanoutShift) Coarse => (BlockShift, FanoutShift);

    public static (int BlockShift, int FanoutShift) Fine => (FineBlockShift, FineFanoutShift);

    /// <summary>log2 of the level-0 block size.</summary>
    public int Shift { get; }

    /// <summary>log2 of the fanout between levels.</summary>
    public int Fanout { get; }

    /// <summary>Levels[0] are blocks of 2^Shift points; Levels[L] of 2^(Shift + L × Fanout).</summary>
    public Aggregate[][] Levels { get; }

    /// <summary>How many level-0 blocks hold final values (a head chunk's block in progress does not).</summary>
    public int Valid { get; }

    /// <summary>Points covered.</summary>
    public int Count { get; }

    /// <summary>Rollup of points [offset, offset + count) of sorted columns, with every level.</summary>
    public static Rollup Build(long[] steps, double[] values, long[] timestamps, int offset, int count, (int BlockShift, int FanoutShift) shape)
    {
        var size = 1 << shape.BlockShift;
        var blocks = new Aggregate[(count + size - 1) >> shape.BlockShift];
        for (var k = 0; k < blocks.Length; k++)
        {
            var from = offset + (k << shape.BlockShift);
            blocks[k] = Aggregate.Scan(steps, values, timestamps, from, Math.Min(offset + count, from + size));
        }

        return FromBlocks(blocks, blocks.Length, count, shape);
    }

    /// <summary>A rollup over level-0 blocks of which the first <paramref name="valid"/> are final.</summary>
    public static Rollup FromBlocks(Aggregate[] blocks, int valid, int count, (int BlockShift, int FanoutShift) shape)
    {
        var fanout = 1 << shape.FanoutShift;
        var levels = new List<Aggregate[]> { blocks };
        var below = blocks;
        var belowValid = valid;
        while (belowValid >= fanout)
        {
            var level = new Aggregate[belowValid >> shape.FanoutShift];
            for (var j = 0; j < level.Length; j++)
            {
                level[j] = Combine(below, j << shape.FanoutShift, fanout);
            }

            levels.Add(level);
            below = level;
            belowValid = level.Length;
        }

        return new Rollup(shape.BlockShift, shape.FanoutShift, [.. levels], valid, count);
    }

    /// <summary>The blocks [from, from + n) of a level, combined in order.</summary>
    public static Aggregate Combine(Aggregate[] level, int from, int n)
    {
        var a = level[from];
        for (var i = 1; i < n; i++)
        {
            a.Add(level[from + i]);
        }

        return a;
    }

    /// <summary>Final blocks of a level.</summary>
    private int ValidAt(int level) => Math.Min(Levels[level].Length, Valid >> (level * Fanout));

    /// <summary>The aggregate of points [lo, hi) of the sorted columns this rollup was built over.</summary>
    public Aggregate Range(long[] steps, double[] values, long[] timestamps, int lo, int hi)
    {
        var size = 1 << Shift;
        if (hi - lo <= 2 * size)
        {
            return Aggregate.Scan(steps, values, timestamps, lo, hi);
        }

        // Block k covers [k * B, min((k + 1) * B, Count)); usable when final and inside [lo, hi).
        var first = (lo + size - 1) >> Shift;
        var end = hi == Count ? Valid : Math.Min(hi >> Shift, Valid);
        if (first >= end)
        {
            return Aggregate.Scan(steps, values, timestamps, lo, hi);
        }

        var a = Aggregate.Scan(steps, values, timestamps, lo, first << Shift);
        var k = first;
        while (k < end)
        {
            var level = 0;
            while (level + 1 < Levels.Length)
            {
                var span = 1 << ((level + 1) * Fanout);
                if ((k & (span - 1)) != 0 || k + span > end || (k >> ((level + 1) * Fanout)) >= ValidAt(level + 1))
                {
                    break;
                }

                level++;
            }

            a.Add(Levels[level][k >> (level * Fanout)]);
            k += 1 << (level * Fanout);
        }

        a.Add(Aggregate.Scan(steps, values, timestamps, Math.Min(end << Shift, Count), hi));
        return a;
    }

    /// <summary>The aggregate of the points in final blocks (all points when every block is final).</summary>
    public Aggregate Total()
    {
        var a = Aggregate.Empty;
        var covered = 0;
        for (var level = Levels.Length - 1; level >= 0; level--)
        {
            var shift = level * Fanout;
            var n = ValidAt(level);
            for (var j = covered >> shift; j < n; j++)
            {
                a.Add(Levels[level][j]);
            }

            covered = Math.Max(covered, n << shift);
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

            result[rowGroup] = FromBlocks(blocks, valid, count, Coarse);
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
