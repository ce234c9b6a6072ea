namespace MetricStore.Core;

/// <summary>
/// The points of one series in columns. Arrays may be longer than <see cref="Count"/> (they are
/// usually pooled); only the first Count elements are points. Steps need not be sorted or unique:
/// within and across batches the last write of a step wins.
/// </summary>
public sealed class SeriesPoints
{
    public required SeriesKey Key { get; init; }

    public required int Count { get; init; }

    public required long[] Steps { get; init; }

    /// <summary>Values as float64 (float32-origin values are widened exactly).</summary>
    public required double[] Values { get; init; }

    /// <summary>Unix epoch milliseconds: one per point, or a single element for every point.</summary>
    public required long[] Timestamps { get; init; }

    /// <summary>True when every value came from a float32 (stored 4 bytes wide without loss).</summary>
    public bool Float32Origin { get; init; }

    /// <summary>True when one timestamp (Timestamps[0]) applies to every point.</summary>
    public bool SharedTimestamp { get; init; }
}

/// <summary>One request of one writer: the unit of ordering, durability and deduplication.</summary>
public sealed class WriteBatch
{
    /// <summary>The client writer (stable across reconnects).</summary>
    public required string WriterId { get; init; }

    /// <summary>1, 2, 3, ... per writer.</summary>
    public required ulong Seq { get; init; }

    public required IReadOnlyList<SeriesPoints> Series { get; init; }

    /// <summary>Called once the batch is no longer needed (durable and applied, or refused), to return pooled arrays.</summary>
    public Action<WriteBatch>? Release { get; init; }

    public long PointCount
    {
        get
        {
            long total = 0;
            foreach (var s in Series)
            {
                total += s.Count;
            }

            return total;
        }
    }
}

/// <summary>How a write ended: durable (or already durable: a retry), or refused.</summary>
public enum WriteOutcome
{
    /// <summary>Written to the WAL (fsynced in sync mode) and applied to the head.</summary>
    Durable,

    /// <summary>Seq was at or below the writer's durable seq: a retry, nothing written again.</summary>
    Duplicate,

    /// <summary>Seq skipped ahead of durable seq + 1: refused so no gap can hide a lost request.</summary>
    Gap,
}

/// <summary>The answer to a write: the outcome and the writer's highest durable seq after it.</summary>
public readonly record struct WriteResult(WriteOutcome Outcome, ulong DurableSeq);
