using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using MetricStore.Core;
using MetricStore.Protocol;
using MetricStore.Server.Grpc;
using MetricStore.Storage.Head;
using MetricStore.Storage.Ingest;
using MetricStore.Storage.Wal;
using MetricStore.Tracking;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Benchmarks;

/// <summary>
/// The ingest hot path, one kernel at a time, per 10,000-point request. Allocated bytes are per
/// operation (per request): divide by 10,000 for per point.
/// </summary>
[MemoryDiagnoser]
public class IngestKernelBenchmarks
{
    private const int Points = 10_000;
    private const int RequestsPerSeal = 60;
    private readonly BoundedMpscQueue<object> _ring = new(1024);
    private readonly object _item = new();
    private byte[] _wire = [];
    private byte[] _manySeriesWire = [];
    private readonly SeriesKeyCache _keys = new();
    private byte[] _record = new byte[1 << 20];
    private WriteBatch _batch = null!;
    private RunDirectory _runs = null!;
    private TrackingStore _tracking = null!;
    private WalSegmentWriter _wal = null!;
    private readonly ChunkRecycler _recycler = new(16);
    private SeriesHead _head = null!;
    private SeriesPoints[] _run = [];
    private int _appended;
    private string _directory = "";

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        _tracking = TrackingStore.Open(new TrackingStoreOptions { DataDirectory = _directory });
        _tracking.CreateExperiment("bench");
        var runId = _tracking.CreateRun(new NewRun { ExperimentName = "bench" }).Id;
        _runs = new RunDirectory(_tracking);

        var request = new V1.WriteRequest { WriterId = "bench", Seq = 1 };
        var batch = new V1.SeriesBatch { Key = new V1.SeriesKey { RunId = runId, Metric = "train/loss" } };
        var random = new Random(1);
        for (var i = 0; i < Points; i++)
        {
            batch.Steps.Add(i);
            batch.ValuesF32.Add((float)(2.5 * Math.Exp(-i / 1e4) + (0.02 * random.NextDouble())));
        }

        batch.TimestampsMs.Add(1_700_000_000_000);
        request.Batches.Add(batch);
        _wire = request.ToByteArray();
        _batch = IngestDecoder.Decode(WriteRequestReader.Read(_wire), _runs, _keys, 0, []);

        // A rank logging 5,000 short series: 10 points each, labelled as bench ingest --series labels them.
        var many = new V1.WriteRequest { WriterId = "bench", Seq = 1 };
        for (var s = 0; s < ManySeries; s++)
        {
            var short_ = new V1.SeriesBatch { Key = new V1.SeriesKey { RunId = runId, Metric = "train/loss" } };
            short_.Key.Labels["rank"] = "0";
            short_.Key.Labels["series"] = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
            for (var i = 0; i < 10; i++)
            {
                short_.Steps.Add(i);
                short_.ValuesF32.Add(i * 0.5f);
            }

            many.Batches.Add(short_);
        }

        _manySeriesWire = many.ToByteArray();
        Directory.CreateDirectory(Path.Combine(_directory, "wal"));
        _wal = new WalSegmentWriter(Path.Combine(_directory, "wal"), 1, 64L * 1024 * 1024, int.MaxValue);
        var points = _batch.Series[0];
        _run = [.. Enumerable.Range(0, RequestsPerSeal).Select(k => new SeriesPoints
        {
            Key = points.Key,
            Count = points.Count,
            Steps = [.. points.Steps.Take(points.Count).Select(step => step + ((long)k * Points))], // a run logging in step order
            Values = points.Values,
            Timestamps = points.Timestamps,
            SharedTimestamp = points.SharedTimestamp,
            Float32Origin = points.Float32Origin,
        })];
        _head = new SeriesHead(0, points.Key, _recycler);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _wal.Dispose();
        _tracking.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>What the server does per request: parse the wire bytes into pooled columns, validate, release.</summary>
    [Benchmark]
    public int DecodeRequest()
    {
        var batch = IngestDecoder.Decode(WriteRequestReader.Read(_wire), _runs, _keys, 0, []);
        var n = batch.Series[0].Count;
        batch.Release!(batch);
        return n;
    }

    private const int ManySeries = 5_000;

    /// <summary>A request of 5,000 series of 10 points on a stream that sent the same keys before (the per-stream key cache hits).</summary>
    [Benchmark]
    public int DecodeManySeries()
    {
        var batch = IngestDecoder.Decode(WriteRequestReader.Read(_manySeriesWire), _runs, _keys, 0, []);
        var n = batch.Series.Count;
        batch.Release!(batch);
        return n;
    }

    /// <summary>The same request on a new stream: every key decoded and validated (what every request cost before the key cache).</summary>
    [Benchmark]
    public int DecodeManySeriesNewStream()
    {
        var batch = IngestDecoder.Decode(WriteRequestReader.Read(_manySeriesWire), _runs, new SeriesKeyCache(), 0, []);
        var n = batch.Series.Count;
        batch.Release!(batch);
        return n;
    }

    /// <summary>Baseline: the generated protobuf parser alone (what the server used before WriteRequestReader).</summary>
    [Benchmark(Baseline = true)]
    public int DecodeGeneratedParser() => V1.WriteRequest.Parser.ParseFrom(_wire).Batches[0].Steps.Count;

    /// <summary>One request through the lock-free ring: enqueue + dequeue.</summary>
    [Benchmark]
    public object? RingRoundTrip()
    {
        _ring.TryEnqueue(_item);
        _ring.TryDequeue(out var item);
        return item;
    }

    /// <summary>Encoding a request into a WAL record (float32 values, arithmetic steps).</summary>
    [Benchmark]
    public int WalEncode() => WalRecords.EncodeWrite(ref _record, _batch, [0]);

    /// <summary>
    /// The request's points appended to a series' head: copied into a chunk, the step range and
    /// order checked, the fine rollup's blocks computed (the series summary reads them when asked). Every 60 requests
    /// (600k points, in step order) the head is frozen and its chunks go back to the recycler, as a seal does.
    /// </summary>
    [Benchmark]
    public void HeadAppend()
    {
        _head.Append(_run[_appended]);
        if (++_appended == RequestsPerSeal)
        {
            _recycler.Retire(_head.Freeze()!);
            _head = new SeriesHead(0, _run[0].Key, _recycler);
            _appended = 0;
        }
    }

    /// <summary>Encode + frame (CRC-32C) + write to the segment file, without fsync.</summary>
    [Benchmark]
    public void WalAppend()
    {
        var length = WalRecords.EncodeWrite(ref _record, _batch, [0]);
        _wal.Append(_record.AsSpan(0, length));
        _wal.WriteGroup();
    }
}
