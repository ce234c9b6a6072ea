using MetricStore.Storage.Query;
using MetricStore.Storage.Segments;

namespace MetricStore.Storage.Head;

/// <summary>
/// A chunk of a series' head in arrival order, with what queries need to skip its points: the step
/// range, whether the steps only grew (then the chunk is a sorted run as it is), and a fine rollup
/// of the blocks completed so far, every level kept as blocks complete (the block being filled is
/// scanned by readers).
/// </summary>
/// <remarks>Mutated only under the series lock; readers take a <see cref="HeadChunkView"/> under it.</remarks>
internal sealed class HeadChunk
{
    private static readonly (int BlockShift, int FanoutShift) s_shape = Rollup.Fine;

    /// <summary>Memory per point of column capacity: step, value and timestamp.</summary>
    public const int ColumnBytesPerPoint = 24;

    /// <summary>Memory per point of the fine rollup, rounded up: 104 bytes per 64-point block, 1.07 with its upper levels: 1.7.</summary>
    public const int RollupBytesPerPoint = 2;

    /// <summary>Memory per point of capacity: the columns and the fine rollup (a cached row group costs the same).</summary>
    public const int BytesPerPoint = ColumnBytesPerPoint + RollupBytesPerPoint;

    /// <summary>
    /// Memory of a chunk beyond its arrays' elements: the chunk, its columns and level-array objects
    /// and the headers of its arrays. Small chunks (a series of a few points) are mostly this.
    /// </summary>
    public const int ObjectBytes = 320;

    public HeadChunk(int capacity)
    {
        Columns = new SeriesColumns(capacity);
        Levels = new Aggregate[LevelCount(capacity)][];
        for (var level = 0; level < Levels.Length; level++)
        {
            Levels[level] = new Aggregate[Math.Max(1, capacity >> (s_shape.BlockShift + (level * s_shape.FanoutShift)))];
        }
    }

    public SeriesColumns Columns { get; }

    public int Count => Columns.Count;

    public int Capacity => Columns.Steps.Length;

    /// <summary>What the chunk holds in memory: its columns' capacity, its rollup levels and its objects.</summary>
    public long MemoryBytes
    {
        get
        {
            long bytes = ObjectBytes + ((long)Capacity * ColumnBytesPerPoint);
            foreach (var level in Levels)
            {
                bytes += (long)level.Length * Aggregate.Bytes;
            }

            return bytes;
        }
    }

    /// <summary>Rollup levels; arrays are replaced, never shrunk, when the chunk grows, so a view keeps its own.</summary>
    public Aggregate[][] Levels { get; private set; }

    /// <summary>Completed level-0 blocks.</summary>
    public int Valid { get; private set; }

    public long MinStep { get; private set; } = long.MaxValue;

    public long MaxStep { get; private set; } = long.MinValue;

    /// <summary>Every step is greater than the one before it, so the chunk is sorted with unique steps.</summary>
    public bool Sorted { get; private set; } = true;

    /// <summary>Every value is exactly a float32 (a seal then writes the chunk's series as float).</summary>
    public bool Float32Exact { get; private set; } = true;

    /// <summary>Empties a reused chunk (<see cref="ChunkRecycler"/>): arrays stay, and rollup entries past <see cref="Valid"/> are never read.</summary>
    public void Reset()
    {
        Columns.Count = 0;
        Valid = 0;
        MinStep = long.MaxValue;
        MaxStep = long.MinValue;
        Sorted = true;
        Float32Exact = true;
    }

    public void Grow(int capacity)
    {
        Columns.EnsureCapacity(capacity);
        var levels = new Aggregate[LevelCount(capacity)][];
        for (var level = 0; level < levels.Length; level++)
        {
            var size = Math.Max(1, capacity >> (s_shape.BlockShift + (level * s_shape.FanoutShift)));
            levels[level] = new Aggregate[size];
            if (level < Levels.Length)
            {
                Array.Copy(Levels[level], levels[level], Math.Min(size, Levels[level].Length));
            }
        }

        Levels = levels;
    }

    /// <summary>Takes over the points and rollup of a smaller chunk (this one empty, from the recycler or new).</summary>
    public void CopyFrom(HeadChunk source)
    {
        var n = source.Count;
        Array.Copy(source.Columns.Steps, Columns.Steps, n);
        Array.Copy(source.Columns.Values, Columns.Values, n);
        Array.Copy(source.Columns.Timestamps, Columns.Timestamps, n);
        for (var level = 0; level < Math.Min(Levels.Length, source.Levels.Length); level++)
        {
            Array.Copy(source.Levels[level], Levels[level], Math.Min(Levels[level].Length, source.Levels[level].Length));
        }

        Columns.Count = n;
        Valid = source.Valid;
        MinStep = source.MinStep;
        MaxStep = source.MaxStep;
        Sorted = source.Sorted;
        Float32Exact = source.Float32Exact;
    }

    private static int LevelCount(int capacity)
    {
        var levels = 1;
        while (capacity >> (s_shape.BlockShift + (levels * s_shape.FanoutShift)) > 0)
        {
            levels++;
        }

        return levels;
    }

    /// <summary>
    /// Points [at, at + take) were just written: update the step range and float32 exactness and
    /// finish full blocks. <paramref name="float32Origin"/>: the values were sent as float32 (the
    /// WAL stores them 4 bytes wide on the same word), so they are exact without a check. Returns
    /// whether their steps strictly increase from the chunk's point before them.
    /// </summary>
    public bool Appended(int at, int take, bool float32Origin)
    {
        Float32Exact = Float32Exact && (float32Origin || ColumnKernels.IsFloat32Exact(Columns.Values.AsSpan(at, take)));
        var steps = Columns.Steps;
        var increasing = true;
        if (take > 0)
        {
            var added = steps.AsSpan(at, take);
            var previous = at == 0 ? long.MinValue : steps[at - 1];
            increasing = added[0] > previous && ColumnKernels.StrictlyIncreasing(added);
            var (min, max) = increasing ? (added[0], added[^1]) : ColumnKernels.MinMax(added);
            MinStep = Math.Min(MinStep, min);
            MaxStep = Math.Max(MaxStep, max);
            Sorted &= increasing;
        }

        Columns.Count = at + take;
        var size = 1 << s_shape.BlockShift;
        var fanout = 1 << s_shape.FanoutShift;
        while ((Valid + 1) << s_shape.BlockShift <= Columns.Count)
        {
            var from = Valid << s_shape.BlockShift;
            Levels[0][Valid] = Aggregate.Scan(steps, Columns.Values, Columns.Timestamps, from, from + size);
            Valid++;

            // A block that completes a group completes the block above it.
            var index = Valid;
            for (var level = 1; level < Levels.Length && index % fanout == 0; level++)
            {
                index /= fanout;
                Levels[level][index - 1] = Rollup.Combine(Levels[level - 1], (index - 1) * fanout, fanout);
            }
        }

        return increasing;
    }

    /// <summary>The aggregate of points [lo, hi) in order, from the rollup's whole blocks and a scan of the rest.</summary>
    public Aggregate Range(int lo, int hi) =>
        new Rollup(s_shape.BlockShift, s_shape.FanoutShift, Levels, Valid, Columns.Count).Range(Columns.Steps, Columns.Values, Columns.Timestamps, lo, hi);

    /// <summary>
    /// The aggregates of this chunk's whole <see cref="Rollup.Coarse"/> blocks (1,024 points from
    /// its start): its fine rollup's level 1, each the combination of 16 completed 64-point blocks.
    /// </summary>
    public SegmentWriter.PartBlocks CoarseBlocks() =>
        s_shape.BlockShift + s_shape.FanoutShift == Rollup.BlockShift && Levels.Length > 1
            ? new(Levels[1], Valid >> s_shape.FanoutShift)
            : SegmentWriter.PartBlocks.None;

    public HeadChunkView View() => new(SeriesColumns.View(Columns), new Rollup(s_shape.BlockShift, s_shape.FanoutShift, Levels, Valid, Columns.Count), MinStep, MaxStep, Sorted);
}

/// <summary>A chunk as it was when a reader looked: the points below its count never change.</summary>
internal sealed record HeadChunkView(SeriesColumns Points, Rollup Rollup, long MinStep, long MaxStep, bool Sorted);
