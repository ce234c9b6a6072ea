using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Grpc.Core;
using MetricStore.Client;
using MetricStore.Protocol.V1;

namespace MetricStore.Cli.Bench;

/// <summary>What 'metricstore bench ingest' was asked to do.</summary>
internal sealed record IngestBenchOptions(string? Server, int Writers, int Series, int Batch, double DurationSeconds, string Durability, bool Json, bool Ceiling, long? SealThreshold = null, double WarmupSeconds = 0, int InFlight = IngestBench.DefaultInFlight);

/// <summary>
/// The ingest load generator: writers stream a float32-origin noisy loss curve as distributed ranks
/// would, every request is awaited until acknowledged, every point is then read back and checked
/// (count and checksum per series), and the same load is sent, in the same run, to a server that
/// discards it: the machine's gRPC ceiling.
/// </summary>
internal static class IngestBench
{
    /// <summary>
    /// Requests each writer keeps in flight unless --in-flight says otherwise. Acks queue behind
    /// what is in flight (Little's law): 4 writers x 8 x 10k points is 320k points, 21 ms at 15M
    /// points/s, which leaves room for a p99 of 50 ms. At 32 the queue alone is 85 ms at that rate,
    /// so no server could meet the latency target there (docs/benchmarks.md).
    /// </summary>
    internal const int DefaultInFlight = 8;
    private const int CurveLength = 1 << 20;

    public static async Task<int> RunAsync(IngestBenchOptions o, TextWriter output, TextWriter progress, CancellationToken cancellationToken)
    {
        var curve = NoisyLossCurve(CurveLength, seed: 42);
        var temp = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(temp);
        try
        {
            BenchServer? spawned = null;
            string url;
            if (o.Server is null)
            {
                string[] serverArguments = o.SealThreshold is { } threshold ? ["--seal-threshold", threshold.ToString(CultureInfo.InvariantCulture)] : [];
                spawned = await BenchServer.StartAsync(Path.Combine(temp, "data"), o.Durability, discard: false, cancellationToken, serverArguments);
                url = spawned.GrpcUrl;
                await progress.WriteLineAsync($"[bench] server started as a child process (pid {spawned.ProcessId}) at {url}, durability {o.Durability}");
            }
            else
            {
                url = o.Server;
            }

            LoadResult load;
            bool verified;
            double? rss;
            (long Bytes, long Rows)? sealedSegments = null;
            using (spawned)
            {
                using var client = new MetricStoreClient(url);
                var experiment = await client.GetOrCreateExperimentAsync("bench-ingest", cancellationToken);
                var run = await client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentId = experiment.ExperimentId, Name = $"ingest-{DateTime.UtcNow:yyyyMMdd-HHmmss}" }, cancellationToken: cancellationToken);
                load = await LoadAsync(url, run.RunId, o, curve, "ingest", progress, cancellationToken);
                rss = spawned?.PeakRssMiB();
                await progress.WriteLineAsync($"[bench] verifying {load.TotalPoints:N0} points (warm-up included) through the query path ...");
                verified = await VerifyAsync(client, run.RunId, o, load, curve, progress, cancellationToken);
                if (spawned is not null)
                {
                    sealedSegments = Storage.StorageEngine.LiveSegmentTotals(spawned.DataDirectory);
                }
            }

            LoadResult? ceiling = null;
            if (o.Ceiling)
            {
                using var discard = await BenchServer.StartAsync(Path.Combine(temp, "discard"), o.Durability, discard: true, cancellationToken);
                ceiling = await LoadAsync(discard.GrpcUrl, Core.RunId.New(), o, curve, "ceiling", progress, cancellationToken);
            }

            var report = new JsonObject
            {
                ["points_per_sec"] = Math.Round(load.PointsPerSecond),
                ["ceiling_points_per_sec"] = ceiling is null ? null : Math.Round(ceiling.PointsPerSecond),
                ["ratio"] = ceiling is null ? null : Math.Round(load.PointsPerSecond / ceiling.PointsPerSecond, 3),
                ["ack_p50_ms"] = Math.Round(load.LatencyPercentile(0.50), 2),
                ["ack_p99_ms"] = Math.Round(load.LatencyPercentile(0.99), 2),
                ["server_peak_rss_mb"] = rss is null ? null : Math.Round(rss.Value, 1),
                // Parquet segment bytes per sealed point (all columns), from the server's manifest.
                ["bytes_per_point"] = sealedSegments is { Rows: > 0 } sealedStats ? Math.Round((double)sealedStats.Bytes / sealedStats.Rows, 3) : null,
                // What the curve's values carry (one cycle of it): no lossless store can go below this.
                ["value_entropy_bytes_per_point"] = Math.Round(CurveEntropy.BytesPerPoint(curve), 3),
                ["sealed_points"] = sealedSegments?.Rows,
                ["verified"] = verified,
                ["points"] = load.Points,
                ["points_total"] = load.TotalPoints,
                ["warmup_s"] = o.WarmupSeconds,
                ["writers"] = o.Writers,
                ["series_per_writer"] = o.Series,
                ["batch"] = o.Batch,
                ["in_flight"] = o.InFlight,
                ["duration_s"] = Math.Round(load.Elapsed.TotalSeconds, 2),
                ["durability"] = o.Durability,
                ["seal_threshold"] = o.SealThreshold,
            };

            if (!o.Json)
            {
                await output.WriteLineAsync($"ingest    {load.PointsPerSecond,16:N0} points/s  ({load.Points:N0} points in {load.Elapsed.TotalSeconds:F1} s after a {o.WarmupSeconds:F0} s warm-up, {o.Writers} writers x {o.Series} series x {o.Batch} points/batch, {o.Durability})");
                if (ceiling is not null)
                {
                    await output.WriteLineAsync($"ceiling   {ceiling.PointsPerSecond,16:N0} points/s  (same batches into a discarding server)   ratio {load.PointsPerSecond / ceiling.PointsPerSecond:F2}");
                }

                await output.WriteLineAsync($"ack       p50 {load.LatencyPercentile(0.5):F1} ms   p99 {load.LatencyPercentile(0.99):F1} ms");
                var disk = sealedSegments is { Rows: > 0 } d ? $"{(double)d.Bytes / d.Rows:F3} bytes/point in Parquet segments ({d.Rows:N0} points sealed)" : "n/a (nothing sealed)";
                await output.WriteLineAsync($"server    peak RSS {(rss is null ? "n/a" : $"{rss:F0} MiB")}   disk {disk}");
                await output.WriteLineAsync($"verified  {(verified ? "yes: every series read back with the expected count and checksum" : "NO")}");
            }

            await output.WriteLineAsync(report.ToJsonString());
            return verified ? 0 : 1;
        }
        finally
        {
            try
            {
                Directory.Delete(temp, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>A loss curve as float32: exponential decay plus Gaussian noise, like a real training log.</summary>
    internal static float[] NoisyLossCurve(int length, int seed) => Array.ConvertAll(NoisyLossCurve64(length, seed), v => (float)v);

    /// <summary>The standard deviation of the Gaussian noise around <see cref="NoisyLossMean"/>.</summary>
    internal const double NoiseSigma = 0.02;

    /// <summary>The noiseless loss at curve index <paramref name="i"/>: exponential decay to a floor of 0.1.</summary>
    internal static double NoisyLossMean(int i) => (2.5 * Math.Exp(-i / 200_000.0)) + 0.1;

    /// <summary>The same curve at full double precision (the noise fills all 52 mantissa bits).</summary>
    internal static double[] NoisyLossCurve64(int length, int seed)
    {
        var random = new Random(seed);
        var curve = new double[length];
        for (var i = 0; i < length; i++)
        {
            var u1 = 1.0 - random.NextDouble();
            var u2 = random.NextDouble();
            var noise = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
            curve[i] = NoisyLossMean(i) + (NoiseSigma * noise);
        }

        return curve;
    }

    private static async Task<LoadResult> LoadAsync(string url, string runId, IngestBenchOptions o, float[] curve, string label, TextWriter progress, CancellationToken cancellationToken)
    {
        var writers = new WriterLoad[o.Writers];
        for (var w = 0; w < o.Writers; w++)
        {
            writers[w] = new WriterLoad(w, runId, o, curve);
        }

        // Warm-up first (the server's JIT tiers up its hot code and its first seals run), then the
        // timed window: throughput and ack latency count only what was sent after the warm-up; every
        // point, warm-up included, is verified.
        var stopwatch = Stopwatch.StartNew();
        var warmup = TimeSpan.FromSeconds(o.WarmupSeconds);
        var timedFrom = Stopwatch.GetTimestamp() + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var deadline = warmup + TimeSpan.FromSeconds(o.DurationSeconds);
        long warmupPoints = 0;
        using var reporter = new CancellationTokenSource();
        var report = Task.Run(async () =>
        {
            long last = 0;
            var lastTime = TimeSpan.Zero;
            var warm = warmup <= TimeSpan.Zero;
            while (!reporter.IsCancellationRequested)
            {
                try
                {
                    var untilWarm = warmup - stopwatch.Elapsed;
                    var wait = !warm && untilWarm < TimeSpan.FromSeconds(1) ? TimeSpan.FromTicks(Math.Max(0, untilWarm.Ticks)) + TimeSpan.FromMilliseconds(1) : TimeSpan.FromSeconds(1);
                    await Task.Delay(wait, reporter.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                var acked = writers.Sum(w => w.AckedPoints);
                var now = stopwatch.Elapsed;
                if (!warm && now >= warmup)
                {
                    warm = true;
                    Interlocked.Exchange(ref warmupPoints, acked);
                }

                var phase = lastTime < warmup ? "warm-up" : label; // the interval that just ended
                await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"[{phase}] {now.TotalSeconds,5:F1} s  {(acked - last) / (now - lastTime).TotalSeconds,14:N0} points/s  acked {acked:N0}"));
                last = acked;
                lastTime = now;
            }
        }, CancellationToken.None);

        await Task.WhenAll(writers.Select(w => w.RunAsync(url, deadline, timedFrom, stopwatch, cancellationToken)));
        var elapsed = stopwatch.Elapsed - warmup;
        await reporter.CancelAsync();
        await report;
        var latencies = writers.SelectMany(w => w.Latencies).ToArray();
        Array.Sort(latencies);
        var total = writers.Sum(w => w.AckedPoints);
        return new LoadResult(total - Interlocked.Read(ref warmupPoints), elapsed, latencies, writers.Select(w => w.AckedRequests).ToArray(), total);
    }

    private static async Task<bool> VerifyAsync(MetricStoreClient client, string runId, IngestBenchOptions o, LoadResult load, float[] curve, TextWriter progress, CancellationToken cancellationToken)
    {
        var ok = true;
        for (var w = 0; w < o.Writers; w++)
        {
            for (var s = 0; s < o.Series; s++)
            {
                var expectedCount = load.AckedRequests[w] * o.Batch;
                var expectedSum = 0.0;
                for (long step = 0; step < expectedCount; step++)
                {
                    expectedSum += curve[step & (CurveLength - 1)];
                }

                var (steps, values, _) = await client.ReadSeriesAsync(runId, "train/loss", WriterLoad.Labels(w, s), cancellationToken);
                var sum = 0.0;
                foreach (var v in values)
                {
                    sum += v;
                }

                var good = steps.Length == expectedCount && sum == expectedSum && (steps.Length == 0 || steps[^1] == expectedCount - 1);
                if (!good)
                {
                    ok = false;
                    await progress.WriteLineAsync($"[bench] series rank={w} series={s}: {steps.Length} points, sum {sum}; expected {expectedCount} points, sum {expectedSum}");
                }
            }
        }

        return ok;
    }

    /// <summary>What a load measured: points acked and time in the timed window, latencies of requests sent in it; AckedRequests and TotalPoints include the warm-up.</summary>
    private sealed record LoadResult(long Points, TimeSpan Elapsed, double[] SortedLatenciesMs, long[] AckedRequests, long TotalPoints)
    {
        public double PointsPerSecond => Points / Elapsed.TotalSeconds;

        public double LatencyPercentile(double p) =>
            SortedLatenciesMs.Length == 0 ? double.NaN : SortedLatenciesMs[Math.Min(SortedLatenciesMs.Length - 1, (int)(p * SortedLatenciesMs.Length))];
    }

    /// <summary>One simulated rank: its own connection and stream, requests of Series batches of Batch points.</summary>
    private sealed class WriterLoad(int index, string runId, IngestBenchOptions o, float[] curve)
    {
        private readonly List<double> _latencies = [];
        private readonly long[] _sentAt = new long[o.InFlight * 4];
        private long _ackedPoints;

        public long AckedPoints => Interlocked.Read(ref _ackedPoints);

        public long AckedRequests { get; private set; }

        public IReadOnlyList<double> Latencies => _latencies;

        public static Dictionary<string, string> Labels(int writer, int series) => new()
        {
            ["rank"] = writer.ToString(CultureInfo.InvariantCulture),
            ["series"] = series.ToString(CultureInfo.InvariantCulture),
        };

        public async Task RunAsync(string url, TimeSpan duration, long timedFrom, Stopwatch clock, CancellationToken cancellationToken)
        {
            using var channel = MetricStoreChannel.Create(new Uri(url), maxSendMessageBytes: 64 * 1024 * 1024);
            var ingest = new IngestService.IngestServiceClient(channel);
            using var call = ingest.Write(cancellationToken: cancellationToken);
            var writerId = $"bench-{index}-{Guid.NewGuid():N}";
            var keys = Enumerable.Range(0, o.Series).Select(s =>
            {
                var key = new SeriesKey { RunId = runId, Metric = "train/loss" };
                key.Labels.Add(Labels(index, s));
                return key;
            }).ToArray();
            var steps = new long[o.Batch];
            var room = new SemaphoreSlim(o.InFlight);
            ulong sent = 0;
            ulong acked = 0;

            var reader = Task.Run(async () =>
            {
                while (await call.ResponseStream.MoveNext(cancellationToken))
                {
                    var durable = call.ResponseStream.Current.DurableSeq;
                    var now = Stopwatch.GetTimestamp();
                    while (acked < durable)
                    {
                        acked++;
                        var sentAt = _sentAt[acked % (ulong)_sentAt.Length];
                        if (sentAt >= timedFrom)
                        {
                            _latencies.Add(Stopwatch.GetElapsedTime(sentAt, now).TotalMilliseconds);
                        }

                        Interlocked.Add(ref _ackedPoints, (long)o.Series * o.Batch);
                        AckedRequests++;
                        room.Release();
                    }
                }
            }, cancellationToken);

            while (clock.Elapsed < duration)
            {
                await room.WaitAsync(cancellationToken);
                var seq = ++sent;
                var first = (long)(seq - 1) * o.Batch;
                for (var i = 0; i < steps.Length; i++)
                {
                    steps[i] = first + i;
                }

                var request = new WriteRequest { WriterId = writerId, Seq = seq };
                var offset = (int)(first & (CurveLength - 1));
                foreach (var key in keys)
                {
                    var batch = new SeriesBatch { Key = key };
                    batch.Steps.AddRange(steps);
                    batch.ValuesF32.AddRange(new ArraySegment<float>(curve, offset, Math.Min(o.Batch, CurveLength - offset)));
                    if (batch.ValuesF32.Count < o.Batch)
                    {
                        batch.ValuesF32.AddRange(new ArraySegment<float>(curve, 0, o.Batch - batch.ValuesF32.Count));
                    }

                    batch.TimestampsMs.Add(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                    request.Batches.Add(batch);
                }

                _sentAt[seq % (ulong)_sentAt.Length] = Stopwatch.GetTimestamp();
                await call.RequestStream.WriteAsync(request, cancellationToken);
            }

            await call.RequestStream.CompleteAsync();
            try
            {
                await reader;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
            {
            }
        }
    }
}
