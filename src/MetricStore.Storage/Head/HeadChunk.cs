using MetricStore.Storage.Query;

namespace MetricStore.Storage.Head;

/// <summary>
/// A chunk of a series' head in arrival order, with what queries need to skip its points: the step
/// range, whether the steps only grew (then the chunk is a sorted run as it is), and the level-0
/// rollup blocks completed so far (the block being filled is scanned by readers).
/// </summary>
/// <remarks>Mutated only under the series lock; readers take a <see cref="HeadChunkView"/> under it.</remarks>
internal sealed class HeadChunk
{
    public HeadChunk(int capacity)
    {
        Columns = new SeriesColumns(capacity);
        Blocks = new Aggregate[Math.Max(1, capacity >> Rollup.BlockShift)];
    }

    public SeriesColumns Columns { get; }

    public int Count => Columns.Count;

    public int Capacity => Columns.Steps.Length;

    public Aggregate[] Blocks { get; private set; }

    /// <summary>Completed level-0 blocks.</summary>
    public int Valid { get; private set; }

    public long MinStep { get; private set; } = long.MaxValue;

    public long MaxStep { get; private set; } = long.MinValue;

    /// <summary>Every step is greater than the one before it, so the chunk is sorted with unique steps.</summary>
    public bool Sorted { get; private set; } = true;

    public void Grow(int capacity)
    {
        Columns.EnsureCapacity(capacity);
        if (Blocks.Length < capacity >> Rollup.BlockShift)
        {
            var blocks = Blocks;
            Array.Resize(ref blocks, capacity >> Rollup.BlockShift);
            Blocks = blocks;
        }
    }

    /// <summary>Points [at, at + take) were just written: update the step range and finish full blocks.</summary>
    public void Appended(int at, int take)
    {
        var steps = Columns.Steps;
        var previous = at == 0 ? long.MinValue : steps[at - 1];
        var min = MinStep;
        var max = MaxStep;
        var sorted = Sorted;
        for (var i = at; i < at + take; i++)
        {
            var s = steps[i];
            sorted &= s > previous;
            previous = s;
            min = Math.Min(min, s);
            max = Math.Max(max, s);
        }

        MinStep = min;
        MaxStep = max;
        Sorted = sorted;
        Columns.Count = at + take;
        while ((Valid + 1) << Rollup.BlockShift <= Columns.Count)
        {
            var from = Valid << Rollup.BlockShift;
            Blocks[Valid] = Aggregate.Scan(steps, Columns.Values, Columns.Timestamps, from, from + Rollup.BlockSize);
            Valid++;
        }
    }

    public HeadChunkView View() => new(SeriesColumns.View(Columns), Blocks, Valid, MinStep, MaxStep, Sorted);
}

/// <summary>A chunk as it was when a reader looked: the points below its count never change.</summary>
internal sealed record HeadChunkView(SeriesColumns Points, Aggregate[] Blocks, int Valid, long MinStep, long MaxStep, bool Sorted);
