using Google.Protobuf;
using MetricStore.Protocol;
using MetricStore.Protocol.V1;
using MetricStore.Server.Grpc;
using MetricStore.Tests;
using MetricStore.Tracking;

namespace MetricStore.Server.Tests;

/// <summary>
/// The per-stream key cache behind ingest decoding, with a real tracking store: a key sent again
/// is the same validated key without decoding, a bad key is refused every time and never kept,
/// and the cache never holds more than its bound.
/// </summary>
public sealed class SeriesKeyCacheTests : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly TrackingStore _tracking;
    private readonly RunDirectory _runs;
    private readonly string _runId;

    public SeriesKeyCacheTests()
    {
        _tracking = TrackingStore.Open(new TrackingStoreOptions { DataDirectory = _directory.Path });
        _tracking.CreateExperiment("keys");
        _runId = _tracking.CreateRun(new NewRun { ExperimentName = "keys" }).Id;
        _runs = new RunDirectory(_tracking);
    }

    public void Dispose()
    {
        _tracking.Dispose();
        _directory.Dispose();
    }

    private byte[] Request(params (string Metric, string Rank)[] keys)
    {
        var request = new WriteRequest { WriterId = "w", Seq = 1 };
        foreach (var (metric, rank) in keys)
        {
            var batch = new SeriesBatch { Key = new Protocol.V1.SeriesKey { RunId = _runId, Metric = metric } };
            batch.Key.Labels["rank"] = rank;
            batch.Steps.Add(1);
            batch.Values.Add(2.5);
            request.Batches.Add(batch);
        }

        return request.ToByteArray();
    }

    private Core.WriteBatch Decode(byte[] wire, SeriesKeyCache keys, List<BatchRejection> rejected) =>
        IngestDecoder.Decode(WriteRequestReader.Read(wire), _runs, keys, 0, rejected);

    [Fact]
    public void A_key_sent_again_on_the_stream_is_the_same_key_without_decoding_and_a_bad_one_is_refused_each_time()
    {
        var keys = new SeriesKeyCache();
        var wire = Request(("loss", "0"), ("loss", "1"), ("", "0"), ("loss", "0"));
        var rejected = new List<BatchRejection>();
        var first = Decode(wire, keys, rejected);
        Assert.Equal(3, first.Series.Count);
        Assert.Equal(2, keys.Misses); // the repeated key within the request hit already
        Assert.Single(rejected);
        Assert.Contains("batches[2].key.metric", rejected[0].Message, StringComparison.Ordinal);
        Assert.Same(first.Series[0].Key, first.Series[2].Key);
        Assert.Equal("loss", first.Series[1].Key.Metric);
        Assert.Equal("1", first.Series[1].Key.Labels.Single(l => l.Key == "rank").Value);

        rejected.Clear();
        var second = Decode(wire, keys, rejected);
        Assert.Equal(2, keys.Misses);
        Assert.Equal(2, keys.Count);
        Assert.Same(first.Series[0].Key, second.Series[0].Key);
        Assert.Same(first.Series[1].Key, second.Series[1].Key);
        Assert.Single(rejected); // refused again, not remembered as good

        // Another stream decodes its keys itself.
        var other = new SeriesKeyCache();
        var third = Decode(wire, other, []);
        Assert.Equal(2, other.Misses);
        Assert.Equal(first.Series[0].Key.Canonical, third.Series[0].Key.Canonical);
        first.Release!(first);
        second.Release!(second);
        third.Release!(third);
    }

    [Fact]
    public void A_stream_with_more_keys_than_the_bound_starts_again_and_still_resolves_every_key()
    {
        var keys = new SeriesKeyCache();
        var total = SeriesKeyCache.MaxKeys + 10;
        for (var from = 0; from < total; from += IngestDecoder.MaxBatchesPerRequest)
        {
            var ranks = Enumerable.Range(from, Math.Min(IngestDecoder.MaxBatchesPerRequest, total - from)).Select(r => r.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            var batch = Decode(Request([.. ranks.Select(r => ("loss", r))]), keys, []);
            Assert.Equal(ranks, batch.Series.Select(s => s.Key.Labels.Single().Value));
            Assert.True(keys.Count <= SeriesKeyCache.MaxKeys, $"{keys.Count} keys kept");
            batch.Release!(batch);
        }

        Assert.Equal(total, keys.Misses);
        Assert.Equal(10, keys.Count); // started again at the bound
    }
}
