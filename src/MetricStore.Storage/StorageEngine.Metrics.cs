using System.Diagnostics.Metrics;
using MetricStore.Storage.Head;

namespace MetricStore.Storage;

public sealed partial class StorageEngine
{
    /// <summary>The name of the <see cref="Meter"/> each engine publishes its memory and read gauges under.</summary>
    public const string MeterName = "MetricStore.Storage";

    /// <summary>The tag of each engine's meter that holds its full data directory path.</summary>
    public const string DataDirectoryTag = "metricstore.data_directory";

    /// <summary>
    /// The engine's memory by part, and its reads, as observable gauges read only when a listener
    /// collects them (<c>dotnet-counters monitor -p PID --counters MetricStore.Storage</c>, or any
    /// OpenTelemetry exporter): so an operator can tell which part holds the server's memory under a
    /// given load, without a heap dump. One meter per engine, disposed with it, tagged with the
    /// engine's data directory (<see cref="DataDirectoryTag"/>).
    /// </summary>
    private Meter CreateMeter()
    {
        var meter = new Meter(MeterName, version: null, tags: [new(DataDirectoryTag, Path.GetFullPath(_options.DataDirectory))]);
        meter.CreateObservableGauge("metricstore.head.bytes", () => UnsealedChunkBytes,
            "By", "Memory of the head's chunks written or being sealed: their columns' capacity, rollups and objects");
        meter.CreateObservableGauge("metricstore.head.points",
            () => Interlocked.Read(ref _unsealedPoints) + Interlocked.Read(ref _sealingPoints),
            "{point}", "Points in the head, written or being sealed");
        meter.CreateObservableGauge("metricstore.head.kept_chunk_bytes",
            () => _recycler.KeptPoints * HeadChunk.BytesPerPoint,
            "By", "Sealed head chunks kept for reuse: waiting for the reads that may see them, or free");
        meter.CreateObservableGauge("metricstore.query_cache.bytes", () => _cache.Bytes,
            "By", "Decoded row groups in the query cache");
        meter.CreateObservableGauge("metricstore.query_cache.capacity_bytes", QueryCacheCapacity,
            "By", "What the query cache may hold now: the memory budget the head leaves, within the cache's floor and maximum");
        meter.CreateObservableGauge("metricstore.query_cache.pooled_bytes", () => _recycler.ColumnBytes,
            "By", "Columns of evicted row groups kept for the next cache misses");
        meter.CreateObservableGauge("metricstore.query_cache.held_evicted_bytes", () => _cache.HeldEvictedBytes,
            "By", "Columns of evicted row groups that reads still hold");
        meter.CreateObservableGauge("metricstore.scan_memory.used_bytes", () => _scanMemory.UsedBytes,
            "By", "Columns scans hold of their own, within the scan memory bound");
        meter.CreateObservableGauge("metricstore.scan_memory.waiting", () => _scanMemory.Waiting,
            "{scan}", "Scans waiting for their first set of columns");
        meter.CreateObservableGauge("metricstore.reads.active", () => _recycler.ActiveReaders,
            "{read}", "Reads inside a read scope (holding a snapshot and the epoch that keeps sealed head chunks from reuse)");
        return meter;
    }
}
