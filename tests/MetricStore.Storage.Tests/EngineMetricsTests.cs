using System.Diagnostics.Metrics;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>
/// The engine's memory gauges (<see cref="StorageEngine.MeterName"/>), read through a real
/// <see cref="MeterListener"/> as dotnet-counters or an exporter would, against the engine's own
/// accounting at each step: writes fill the head, a seal moves them to files, a read fills the cache
/// and holds a read scope while it streams, and disposing the engine ends the gauges.
/// </summary>
public sealed class EngineMetricsTests
{
    [Fact]
    public async Task The_memory_gauges_follow_the_head_the_cache_and_the_reads()
    {
        await using var h = EngineHarness.Open();
        await h.CloseAsync();
        await using var engine = StorageEngine.Open(h.Options() with { SealThresholdPoints = 100_000_000 });
        using var gauges = new Gauges(Path.GetFullPath(h.DataDirectory));
        Assert.Equal(0, gauges.Read("metricstore.head.bytes"));

        var (steps, values) = Range(0, 300_000, s => s * 0.5);
        await engine.WriteAsync(Batch("w", 1, (Key(), steps, values)));
        Assert.Equal(300_000, gauges.Read("metricstore.head.points"));
        Assert.Equal(5 * new Head.HeadChunk(Head.SeriesHead.ChunkSize).MemoryBytes, gauges.Read("metricstore.head.bytes")); // 300k points fill 5 chunks of 64k
        Assert.Equal(engine.HeadBytes, gauges.Read("metricstore.head.bytes") + gauges.Read("metricstore.head.kept_chunk_bytes"));
        Assert.Equal(0, gauges.Read("metricstore.query_cache.bytes"));

        await engine.SealNowAsync();
        Assert.Equal(0, gauges.Read("metricstore.head.bytes"));
        Assert.Equal(0, gauges.Read("metricstore.head.points"));
        Assert.Equal(engine.HeadChunkReuse.KeptPoints * Head.HeadChunk.BytesPerPoint, gauges.Read("metricstore.head.kept_chunk_bytes"));
        Assert.True(gauges.Read("metricstore.head.kept_chunk_bytes") > 0, "a seal of 300k points kept no chunk");

        // A streamed read holds its scope between slices; the row group it read is cached.
        await using (var slices = engine.ReadPointsAsync(Key(), long.MinValue, long.MaxValue, 1000).GetAsyncEnumerator())
        {
            Assert.True(await slices.MoveNextAsync());
            Assert.Equal(1, gauges.Read("metricstore.reads.active"));
        }

        Assert.Equal(0, gauges.Read("metricstore.reads.active"));
        Assert.Equal(engine.QueryCache.Bytes, gauges.Read("metricstore.query_cache.bytes"));
        Assert.True(gauges.Read("metricstore.query_cache.bytes") > 0, "the read cached nothing");
        Assert.Equal(engine.QueryCacheCapacity(), gauges.Read("metricstore.query_cache.capacity_bytes"));
        Assert.Equal(0, gauges.Read("metricstore.scan_memory.used_bytes"));
        Assert.Equal(0, gauges.Read("metricstore.scan_memory.waiting"));

        await engine.DisposeAsync();
        Assert.Empty(gauges.Collect());
    }

    /// <summary>Collects the gauges of one engine's meter (others run in parallel tests).</summary>
    private sealed class Gauges : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Dictionary<string, long> _values = [];

        public Gauges(string dataDirectory)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == StorageEngine.MeterName
                    && instrument.Meter.Tags?.Any(t => t.Key == StorageEngine.DataDirectoryTag && (string?)t.Value == dataDirectory) == true)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => _values[instrument.Name] = value);
            _listener.SetMeasurementEventCallback<int>((instrument, value, _, _) => _values[instrument.Name] = value);
            _listener.Start();
        }

        public Dictionary<string, long> Collect()
        {
            _values.Clear();
            _listener.RecordObservableInstruments();
            return new Dictionary<string, long>(_values);
        }

        public long Read(string name) =>
            Collect().TryGetValue(name, out var value) ? value : throw new KeyNotFoundException($"gauge {name} was not published");

        public void Dispose() => _listener.Dispose();
    }
}
