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

    /// <summary>
    /// The head is sealed into Parquet segments once this many points arrived since the last seal.
    /// While a seal runs, the writer accepts up to twice this many before it waits for the seal:
    /// that is what bounds the server's memory under any load.
    /// </summary>
    public long SealThresholdPoints { get; init; } = DefaultSealThresholdPoints;

    public const long DefaultSealThresholdPoints = 4_000_000;

    /// <summary>
    /// The head is also sealed once the chunks written since the last seal hold this many bytes
    /// (<see cref="Head.HeadChunk.MemoryBytes"/>: column capacity, rollups and objects), and writes
    /// wait for a running seal at twice this, as for <see cref="SealThresholdPoints"/>. Points alone
    /// do not bound memory: a series' chunk has room for more points than it holds (it doubles as it
    /// grows) and objects of its own, so 20,000 series of a few hundred points each held five times
    /// the memory of the same points in one series (docs/benchmarks.md, "Many series"). Default:
    /// the default point threshold at 28 bytes a point (112 MB), just above what 4M points of a few
    /// large series hold (25.7 bytes a point in full 64k-point chunks, plus a partly filled chunk
    /// per series), so that for them the point threshold decides as before (at 26 bytes a point,
    /// 'bench ingest''s four series reached the byte threshold at about 3.7M points). Alternating
    /// runs of 'bench ingest' could not tell 26 bytes from no byte threshold or from the build
    /// before it: 14.7-21.5M points/s and ack p99 36-71 ms on all three (docs/benchmarks.md).
    /// </summary>
    public long SealThresholdBytes { get; init; } = DefaultSealThresholdBytes;

    public const long DefaultSealThresholdBytes = DefaultSealThresholdPoints * 28;

    /// <summary>The head is also sealed when its oldest unsealed point is this old (and there is something to seal).</summary>
    public TimeSpan SealMaxAge { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The compaction fanout: when this many adjacent point files of similar size are live (the
    /// largest at most 4 times the smallest), they are merged series by series (last write wins)
    /// into one float and one double file that takes their place (size-tiered: big files are not
    /// rewritten with every seal).
    /// </summary>
    public int CompactAtSegments { get; init; } = 8;

    /// <summary>
    /// Compaction copies a series' row group of at least this many points byte for byte into the
    /// merged file, without decoding and re-encoding it, when the series' row groups in the merged
    /// files follow each other in step order (nothing to resolve). Smaller ones are merged into
    /// row groups of up to a million points, so a point is re-encoded only until its row group is
    /// this large, not at every tier. Default: half of a full row group.
    /// </summary>
    public int CompactionCopyRows { get; init; } = Segments.SegmentWriter.MaxRowGroupRows / 2;

    /// <summary>
    /// Bytes of decoded sealed row groups kept for queries (24 per point; least recently used out).
    /// Bucket edges and raw reads need the points of the row groups they touch; a warm query finds
    /// them here instead of decoding Parquet again.
    /// </summary>
    public long QueryCacheBytes { get; init; } = DefaultQueryCacheBytes;

    public const long DefaultQueryCacheBytes = 512L * 1024 * 1024;

    /// <summary>
    /// Bytes the head (its points at 26 bytes each with their rollups, including those being sealed,
    /// plus the sealed chunks kept for reuse) and the query cache may hold together. The head is bounded by the seal
    /// threshold and does not wait for the cache; the cache gives way: its capacity is this budget
    /// minus what the head holds, at most <see cref="QueryCacheBytes"/> and at least
    /// <see cref="QueryCacheFloorBytes"/>, and it evicts as the head grows. So a dashboard reading
    /// many runs while training jobs write at full speed does not add a full query cache on top of
    /// a full head.
    /// </summary>
    public long MemoryBudgetBytes { get; init; } = DefaultMemoryBudgetBytes;

    /// <remarks>
    /// At the default seal threshold the head holds at most about 600 MiB (16M points being
    /// written or sealed: 397 MiB; 122 kept chunks of 64k points: 198 MiB), so under the heaviest
    /// ingest the cache is at its floor. When writes stop, the kept chunks go after
    /// <see cref="KeptChunksIdleTime"/>, and up to 4M points (99 MiB) wait for the age-based seal:
    /// the cache then has at least 285 MiB less the evicted columns pooled for reuse (up to the
    /// floor), and all 384 MiB with an empty head. A 10M-step series takes 260 MB of cache.
    /// 512 MiB was the default until the eleventh session: with the server's heap governor, ingest
    /// plus a dashboard peaked at 969–993 MiB of RSS at 384 against 1,114–1,146 MiB at 512
    /// (docs/benchmarks.md). 768 MiB was measured too: 1,923–2,052 MiB under that load.
    /// </remarks>
    public const long DefaultMemoryBudgetBytes = 384L * 1024 * 1024;

    /// <summary>
    /// A raw read holds its read scope (which keeps the head chunks it may see from reuse, its
    /// snapshot's files from deletion, and the cached row groups it took pinned) for about this many
    /// points at a time, then takes a new snapshot from the step after the last run it sent. 2M by default.
    /// </summary>
    public int ReadWindowPoints { get; init; } = 1 << 21;

    /// <summary>
    /// After this long without a write, the head chunks kept for reuse (up to two seals' worth, 198 MiB
    /// at the default seal threshold) are let go, so the query cache may use their share of
    /// <see cref="MemoryBudgetBytes"/> while only dashboards read. 30 s by default: longer than a
    /// training job's usual pause (an evaluation, a checkpoint), after which the next writes would
    /// allocate them again.
    /// </summary>
    public TimeSpan KeptChunksIdleTime { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Bytes of decoded columns that scans (raw reads of more row groups than the query cache holds
    /// or should keep: a long series read in full, a bench verifying what it wrote) hold of their
    /// own, over all scans at once, outside <see cref="MemoryBudgetBytes"/>. A scan takes 24 MB per
    /// million-point row group for the one being sent, and as much again for the next while there
    /// is room; past the bound it keeps one set, and a scan that would need its first waits its turn.
    /// 48 MiB by default: two million-point sets, so one scan decodes ahead, or two read at once;
    /// on two cores more at once would not read faster. Eight and sixteen full reads of a 10M-step
    /// series under ingest took the server to 1,643 and 2,292 MiB of RSS without a bound, 973 and
    /// 949–1,203 MiB with it (docs/benchmarks.md, twelfth session, which also has the versions tried
    /// first: 96 MiB, and scans that waited inside their read scope).
    /// </summary>
    public long ScanMemoryBytes { get; init; } = DefaultScanMemoryBytes;

    /// <summary>48 MiB: two sets of columns for the largest row group a point file holds (<see cref="Segments.SegmentWriter.MaxRowGroupRows"/>, 24 bytes a point).</summary>
    public const long DefaultScanMemoryBytes = 2L * Segments.SegmentWriter.MaxRowGroupRows * Head.HeadChunk.ColumnBytesPerPoint;

    /// <summary>The query cache keeps at least this much (or <see cref="QueryCacheBytes"/> if smaller) however large the head: reads always have room for the row groups they are working on.</summary>
    public long QueryCacheFloorBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Log sink (level, message); null = silent. Storage takes no logging framework dependency.</summary>
    public Action<StorageLogLevel, string>? Log { get; init; }

    /// <summary>The clock for server-side timestamps.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    public string WalDirectory => Path.Combine(DataDirectory, "wal");

    public string SegmentDirectory => Path.Combine(DataDirectory, "segments");

    public string ManifestDirectory => Path.Combine(DataDirectory, "manifest");
}

public enum StorageLogLevel
{
    Information,
    Warning,
    Error,
}
