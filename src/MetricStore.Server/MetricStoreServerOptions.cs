using System.Net;
using MetricStore.Core;

namespace MetricStore.Server;

/// <summary>
/// Immutable settings of a server. The CLI fills it from flags and environment variables
/// (flags win); tests build it directly with ports 0.
/// </summary>
public sealed record MetricStoreServerOptions
{
    public const string DefaultDataDirectory = "metricstore-data";
    public const string DefaultHost = "127.0.0.1";
    public const int DefaultGrpcPort = 50051;
    public const int DefaultHttpPort = 8765;

    /// <summary>The data directory: meta.db, WAL, segments, artifacts. Created when missing.</summary>
    public string DataDirectory { get; init; } = DefaultDataDirectory;

    /// <summary>The address to bind, an IP literal or "localhost". Loopback by default: nothing is exposed unless asked.</summary>
    public string Host { get; init; } = DefaultHost;

    /// <summary>gRPC port (HTTP/2 cleartext). 0 = any free port.</summary>
    public int GrpcPort { get; init; } = DefaultGrpcPort;

    /// <summary>HTTP/JSON port (HTTP/1.1). 0 = any free port.</summary>
    public int HttpPort { get; init; } = DefaultHttpPort;

    /// <summary>When a metrics write is acknowledged: after fsync (Sync, default) or after write (Async).</summary>
    public Storage.Durability Durability { get; init; } = Storage.Durability.Sync;

    /// <summary>Points accepted since the last seal that start the next one (null = the engine's default, 4M).</summary>
    public long? SealThresholdPoints { get; init; }

    /// <summary>MiB of decoded row groups kept for queries; null = the storage default (512).</summary>
    public int? QueryCacheMiB { get; init; }

    /// <summary>MiB the head and the query cache hold together (the cache gives way); null = the storage default (384).</summary>
    public int? MemoryBudgetMiB { get; init; }

    /// <summary>MiB of decoded columns that long raw reads (scans) hold of their own, all together; null = the storage default (48).</summary>
    public int? ScanMemoryMiB { get; init; }

    /// <summary>
    /// MiB of decoded write requests that all ingest streams hold at once (<see cref="Grpc.IngestAdmission"/>);
    /// a stream past it reads its next request only when earlier ones are durable. 64 by default:
    /// 4 writers keeping 32 requests of 10k points each in flight hold about 32 MiB.
    /// </summary>
    public int IngestBufferMiB { get; init; } = DefaultIngestBufferMiB;

    public const int DefaultIngestBufferMiB = 64;

    /// <summary>
    /// MiB the managed heap may grow past what the last full collection left live before the server
    /// starts a background collection (<see cref="HeapGovernor"/>); null or 0 = off, the GC's own
    /// pacing. The GC is the process's, so an embedding host opts in; <c>metricstore serve</c> uses
    /// <see cref="ServeHeapSlackMiB"/>.
    /// </summary>
    public int? HeapSlackMiB { get; init; }

    /// <summary>
    /// MiB of free space a full collection may leave in the heap before the server compacts it (at
    /// most once every 10 s; the process pauses while live arrays move); null or 0 = never.
    /// <c>metricstore serve</c> uses <see cref="ServeHeapCompactFreeMiB"/>.
    /// </summary>
    public int? HeapCompactFreeMiB { get; init; }

    public const int ServeHeapSlackMiB = 64;

    public const int ServeHeapCompactFreeMiB = 128;

    /// <summary>Benchmark only: ingest streams are acknowledged and their points discarded (the gRPC ceiling).</summary>
    public bool DiscardIngest { get; init; }

    /// <summary>Require a user token on every call (users come from 'metricstore users add'); off = every call is the local admin.</summary>
    public bool Auth { get; init; }

    /// <summary>The largest artifact accepted, in bytes; null means 64 GiB.</summary>
    public long? MaxArtifactBytes { get; init; }

    /// <summary>
    /// A streamed read whose client accepts nothing for this long is ended (its request aborted), so
    /// that it stops holding its snapshot: the files compactions replace stay on disk while a read
    /// that may list them is open. Two minutes by default.
    /// </summary>
    public TimeSpan ReadStallTimeout { get; init; } = DefaultReadStallTimeout;

    public static readonly TimeSpan DefaultReadStallTimeout = TimeSpan.FromMinutes(2);

    /// <summary>Throws InvalidArgument naming the setting and value when an option is unusable.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            MetricStoreException.InvalidArgument("data directory is empty; pass --data DIR");
        }

        if (!IsValidHost(Host))
        {
            MetricStoreException.InvalidArgument($"host {Core.Validate.Quote(Host)} is not an IP address or 'localhost'");
        }

        if (QueryCacheMiB is < 0)
        {
            MetricStoreException.InvalidArgument($"query cache {QueryCacheMiB} MiB is negative; use 0 (no cache) or more");
        }

        if (MemoryBudgetMiB is <= 0)
        {
            MetricStoreException.InvalidArgument($"memory budget {MemoryBudgetMiB} MiB is not positive");
        }

        if (ScanMemoryMiB is <= 0)
        {
            MetricStoreException.InvalidArgument($"scan memory {ScanMemoryMiB} MiB is not positive");
        }

        if (ReadStallTimeout <= TimeSpan.Zero)
        {
            MetricStoreException.InvalidArgument($"read stall timeout {ReadStallTimeout.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)} s is not positive (--read-stall-seconds)");
        }

        if (IngestBufferMiB < 1)
        {
            MetricStoreException.InvalidArgument($"ingest buffer {IngestBufferMiB} MiB is not positive; use 1 or more (--ingest-buffer-mb)");
        }

        if (HeapSlackMiB is < 0)
        {
            MetricStoreException.InvalidArgument($"heap slack {HeapSlackMiB} MiB is negative; use 0 (off) or more (--heap-slack-mb)");
        }

        if (HeapCompactFreeMiB is < 0)
        {
            MetricStoreException.InvalidArgument($"heap compaction threshold {HeapCompactFreeMiB} MiB is negative; use 0 (never) or more (--heap-compact-free-mb)");
        }

        if (MaxArtifactBytes is <= 0)
        {
            MetricStoreException.InvalidArgument($"max artifact size {MaxArtifactBytes} bytes is not positive");
        }

        if (SealThresholdPoints is < 1000)
        {
            MetricStoreException.InvalidArgument($"seal threshold {SealThresholdPoints} points is too small; use at least 1000");
        }

        CheckPort("grpc port", GrpcPort);
        CheckPort("http port", HttpPort);
        if (GrpcPort != 0 && GrpcPort == HttpPort)
        {
            MetricStoreException.InvalidArgument($"grpc port and http port are both {GrpcPort}; they must differ");
        }
    }

    internal IPAddress BindAddress() =>
        string.Equals(Host, "localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback : IPAddress.Parse(Host);

    private static bool IsValidHost(string host) =>
        string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase) || IPAddress.TryParse(host, out _);

    private static void CheckPort(string name, int port)
    {
        if (port is < 0 or > 65535)
        {
            MetricStoreException.InvalidArgument($"{name} {port} is out of range; use 1..65535, or 0 for any free port");
        }
    }
}
