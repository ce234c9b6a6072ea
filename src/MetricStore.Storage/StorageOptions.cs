namespace MetricStore.Storage;

/// <summary>When a write is acknowledged.</summary>
public enum Durability
{
    /// <summary>After the WAL write is fsynced (default): an ack survives power loss.</summary>
    Sync,

    /// <summary>After the WAL write; fsync every <see cref="StorageOptions.AsyncFlushInterval"/>. An ack survives a process crash, not power loss.</summary>
    Async,
}

/// <summary>Immutable settings of a <see cref="StorageEngine"/>; tests and benchmarks build it directly.</summary>
public sealed record StorageOptions
{
    /// <summary>The data directory; the engine uses <c>wal/</c> inside it.</summary>
    public required string DataDirectory { get; init; }

    public Durability Durability { get; init; } = Durability.Sync;

    public TimeSpan AsyncFlushInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Requests that may wait for the writer loop; a full ring makes senders wait. Power of two.</summary>
    public int RingCapacity { get; init; } = 1024;

    /// <summary>Most requests one group commit takes.</summary>
    public int MaxGroupRequests { get; init; } = 256;

    /// <summary>A WAL segment is closed past this size.</summary>
    public long WalSegmentBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// WAL record bodies of at least this many bytes are offered to LZ4 (kept only when 1/8 smaller).
    /// Off by default: measured on 2 cores it cost 27% of ingest throughput to shrink a WAL that
    /// lives only until sealing by a third (docs/benchmarks.md).
    /// </summary>
    public int WalCompressAboveBytes { get; init; } = int.MaxValue;

    /// <summary>Log sink (level, message); null = silent. Storage takes no logging framework dependency.</summary>
    public Action<StorageLogLevel, string>? Log { get; init; }

    /// <summary>The clock for server-side timestamps.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    public string WalDirectory => Path.Combine(DataDirectory, "wal");
}

public enum StorageLogLevel
{
    Information,
    Warning,
    Error,
}
