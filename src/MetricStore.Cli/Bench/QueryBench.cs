using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Apache.Arrow;
using Apache.Arrow.Ipc;
using DuckDB.NET.Data;
using MetricStore.Client;
using MetricStore.Protocol.V1;

namespace MetricStore.Cli.Bench;

/// <summary>What 'metricstore bench query' was asked to do.</summary>
internal sealed record QueryBenchOptions(string? Data, int BigSteps, int Runs, int RunSteps, int Iterations, bool Json);

/// <summary>
/// The query benchmark: builds (or reuses) one long series and many shorter ones in a server started
/// as a child process, restarts it (so rollups come from segment footers and the head from the WAL),
/// then measures downsampled reads of the long series over the full range and random zooms,
/// full-resolution Arrow reads, LatestValues for every short series, and the same bucket aggregate
/// computed by DuckDB over the same Parquet files in the same run. Every answer is checked against
/// a full scan.
/// </summary>
internal static class QueryBench
{
    private const string Metric = "train/loss";
    private const int Buckets = 1000;
    private const int BatchPoints = 100_000;
    private const int CurveLength = 1 << 20;
    private static readonly TimeSpan s_warmUp = TimeSpan.FromSeconds(5);

    public static async Task<int> RunAsync(QueryBenchOptions o, TextWriter output, TextWriter progress, CancellationToken cancellationToken)
    {
        var temp = o.Data is null ? Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N")) : null;
        var data = o.Data ?? Path.Combine(temp!, "data");
        try
        {
            var dataset = Dataset.Load(data, o);
            double? buildSeconds = null;
            if (dataset is null)
            {
                var stopwatch = Stopwatch.StartNew();
                // Seals often enough that the long series, written first, is all in Parquet by the end
                // (as it would be in a store that has run for a while), for DuckDB to read.
                var sealEvery = Math.Max(1000, Math.Min(4_000_000, Math.Min(o.BigSteps / 4, (long)o.Runs * o.RunSteps / 2)));
                using var builder = await BenchServer.StartAsync(data, "sync", discard: false, cancellationToken, "--seal-threshold", sealEvery.ToString(CultureInfo.InvariantCulture));
                await progress.WriteLineAsync($"[bench] building {o.BigSteps:N0} steps + {o.Runs:N0} runs x {o.RunSteps:N0} steps in {data} (server pid {builder.ProcessId})");
                dataset = await BuildAsync(builder.GrpcUrl, o, progress, cancellationToken);

                // Seals run in the background: wait until one covers a point written after the long
                // series (seals are cuts in write order, so then all of the long series is sealed).
                var deadline = Stopwatch.StartNew();
                while (Storage.StorageEngine.LiveSegmentTotals(data).Rows <= o.BigSteps)
                {
                    if (deadline.Elapsed > TimeSpan.FromMinutes(2))
                    {
                        throw new IOException($"the server sealed {Storage.StorageEngine.LiveSegmentTotals(data).Rows} points in 2 minutes; expected more than {o.BigSteps}");
                    }

                    await Task.Delay(100, cancellationToken);
                }
                dataset.Save(data);
                buildSeconds = stopwatch.Elapsed.TotalSeconds;

                // The build leaves hundreds of MB of dirty pages that the kernel would write back
                // while the next server is being measured: flush them first.
                foreach (var file in Directory.EnumerateFiles(data, "*", SearchOption.AllDirectories))
                {
                    try
                    {
                        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
                        stream.Flush(flushToDisk: true);
                    }
                    catch (IOException)
                    {
                        // A file the builder's last compaction removed meanwhile.
                    }
                }
                await progress.WriteLineAsync($"[bench] built in {buildSeconds:F1} s");
            }
            else
            {
                await progress.WriteLineAsync($"[bench] reusing the dataset in {data}");
            }

            // A fresh server process on the same files: no seal or compaction runs while measuring.
            using var server = await BenchServer.StartAsync(data, "sync", discard: false, cancellationToken);
            try
            {
                await progress.WriteLineAsync($"[bench] server restarted (pid {server.ProcessId}); measuring with {o.Iterations} iterations");
                using var channel = MetricStoreChannel.Create(new Uri(server.GrpcUrl), maxReceiveMessageBytes: 64 * 1024 * 1024);
                var query = new QueryService.QueryServiceClient(channel);
                using var http = new HttpClient { BaseAddress = new Uri(server.HttpUrl), Timeout = TimeSpan.FromMinutes(5) };
                var big = new SeriesKey { RunId = dataset.BigRun, Metric = Metric };

                var fullRequest = Downsample(dataset.BigRun, 0, o.BigSteps - 1);
                var cold = Stopwatch.StartNew();
                var fullResult = await query.ReadDownsampledAsync(fullRequest, deadline: Deadline(), cancellationToken: cancellationToken);
                var coldMs = cold.Elapsed.TotalMilliseconds;
                var full = await BenchTiming.TimeAsync(o.Iterations, s_warmUp, () => query.ReadDownsampledAsync(fullRequest, deadline: Deadline(), cancellationToken: cancellationToken).ResponseAsync);
                await progress.WriteLineAsync($"[bench] full range, {Buckets} buckets: p50 {BenchTiming.Percentile(full, 0.5):F2} ms, p99 {BenchTiming.Percentile(full, 0.99):F2} ms (cold {coldMs:F0} ms)");

                var random = new Random(7);
                var zooms = Enumerable.Range(0, o.Iterations).Select(_ =>
                {
                    var width = (long)Math.Exp(random.NextDouble() * Math.Log(o.BigSteps / 1000.0)) * 1000;
                    var start = (long)(random.NextDouble() * (o.BigSteps - width));
                    return Downsample(dataset.BigRun, start, start + width - 1);
                }).ToArray();
                var zoomIndex = 0;
                var zoom = await BenchTiming.TimeAsync(o.Iterations, s_warmUp, () => query.ReadDownsampledAsync(zooms[zoomIndex++ % zooms.Length], deadline: Deadline(), cancellationToken: cancellationToken).ResponseAsync);
                await progress.WriteLineAsync($"[bench] random zooms, {Buckets} buckets: p50 {BenchTiming.Percentile(zoom, 0.5):F2} ms, p99 {BenchTiming.Percentile(zoom, 0.99):F2} ms");

                var latestRequest = new LatestValuesRequest { Metrics = { Metric } };
                latestRequest.RunIds.AddRange(dataset.SmallRuns);
                var latestResult = await query.LatestValuesAsync(latestRequest, deadline: Deadline(), cancellationToken: cancellationToken);
                var latest = await BenchTiming.TimeAsync(o.Iterations, s_warmUp, () => query.LatestValuesAsync(latestRequest, deadline: Deadline(), cancellationToken: cancellationToken).ResponseAsync);
                await progress.WriteLineAsync($"[bench] LatestValues for {dataset.SmallRuns.Length} series: p50 {BenchTiming.Percentile(latest, 0.5):F2} ms, p99 {BenchTiming.Percentile(latest, 0.99):F2} ms");

                // Full-resolution reads as Arrow IPC over HTTP, into Arrow arrays in this process: every
                // column, then what a chart draws (step and value, float32 values when all are exact).
                var (raw, rawMs) = await TimeArrowReadsAsync(http, dataset.BigRun, AllColumns, cancellationToken);
                var rawPointsPerSec = o.BigSteps / (rawMs / 1000);
                await progress.WriteLineAsync($"[bench] full-resolution read: {o.BigSteps:N0} points as Arrow in {rawMs:F0} ms (median of 5) = {rawPointsPerSec:N0} points/s");
                var (chart, chartMs) = await TimeArrowReadsAsync(http, dataset.BigRun, StepValueAuto, cancellationToken);
                var chartPointsPerSec = o.BigSteps / (chartMs / 1000);
                await progress.WriteLineAsync($"[bench] the same, step and value only ({(chart.Float32 ? "float32" : "float64")} values): {chartMs:F0} ms (median of 5) = {chartPointsPerSec:N0} points/s");
                var rss = server.PeakRssMiB();

                var (duckMs, duckBuckets) = DuckDbDownsample(data, dataset.BigRun, fullResult.StartStep, fullResult.BucketWidth);
                await progress.WriteLineAsync($"[bench] DuckDB, same {Buckets} buckets over the same Parquet files: {duckMs:F1} ms (median of 5)");

                var checks = new List<string>();
                Verify(checks, dataset, o, fullResult, (raw.Steps, raw.Values), duckBuckets, latestResult);
                VerifyRaw(checks, "step/value read", o, (chart.Steps, chart.Values));
                if (!chart.Float32)
                {
                    checks.Add("the step/value read of a float32-origin series did not come as float32");
                }
                foreach (var problem in checks)
                {
                    await progress.WriteLineAsync($"[bench] MISMATCH: {problem}");
                }

                var verified = checks.Count == 0;
                var report = new JsonObject
                {
                    ["downsample_p50_ms"] = Math.Round(BenchTiming.Percentile(full, 0.5), 3),
                    ["downsample_p99_ms"] = Math.Round(BenchTiming.Percentile(full, 0.99), 3),
                    ["downsample_cold_ms"] = Math.Round(coldMs, 1),
                    ["zoom_p50_ms"] = Math.Round(BenchTiming.Percentile(zoom, 0.5), 3),
                    ["zoom_p99_ms"] = Math.Round(BenchTiming.Percentile(zoom, 0.99), 3),
                    ["duckdb_downsample_ms"] = Math.Round(duckMs, 2),
                    ["speedup_vs_duckdb"] = Math.Round(duckMs / BenchTiming.Percentile(full, 0.5), 1),
                    ["raw_read_points_per_sec"] = Math.Round(rawPointsPerSec),
                    ["raw_read_ms"] = Math.Round(rawMs, 1),
                    ["raw_read_step_value_points_per_sec"] = Math.Round(chartPointsPerSec),
                    ["raw_read_step_value_ms"] = Math.Round(chartMs, 1),
                    ["latest_1000_ms"] = Math.Round(BenchTiming.Percentile(latest, 0.5), 3),
                    ["latest_p99_ms"] = Math.Round(BenchTiming.Percentile(latest, 0.99), 3),
                    ["latest_series"] = dataset.SmallRuns.Length,
                    ["server_peak_rss_mb"] = rss is null ? null : Math.Round(rss.Value, 1),
                    ["big_series_points"] = o.BigSteps,
                    ["points"] = o.BigSteps + ((long)o.Runs * o.RunSteps),
                    ["build_s"] = buildSeconds is null ? null : Math.Round(buildSeconds.Value, 1),
                    ["iterations"] = o.Iterations,
                    ["verified"] = verified,
                };
                if (!o.Json)
                {
                    await output.WriteLineAsync($"downsample  full range  p50 {BenchTiming.Percentile(full, 0.5),8:F2} ms  p99 {BenchTiming.Percentile(full, 0.99),8:F2} ms   ({Buckets} buckets over {o.BigSteps:N0} steps; cold {coldMs:F0} ms)");
                    await output.WriteLineAsync($"downsample  zooms       p50 {BenchTiming.Percentile(zoom, 0.5),8:F2} ms  p99 {BenchTiming.Percentile(zoom, 0.99),8:F2} ms");
                    await output.WriteLineAsync($"duckdb      same query      {duckMs,8:F2} ms               speedup {duckMs / BenchTiming.Percentile(full, 0.5):F1}x");
                    await output.WriteLineAsync($"raw read    {rawPointsPerSec,16:N0} points/s into Arrow (HTTP, {rawMs:F0} ms for {o.BigSteps:N0} points)");
                    await output.WriteLineAsync($"  step+value{chartPointsPerSec,16:N0} points/s (columns=step,value&value_type=auto, {chartMs:F0} ms)");
                    await output.WriteLineAsync($"latest      p50 {BenchTiming.Percentile(latest, 0.5),8:F2} ms  p99 {BenchTiming.Percentile(latest, 0.99),8:F2} ms   ({dataset.SmallRuns.Length} series)");
                    await output.WriteLineAsync($"server      peak RSS {(rss is null ? "n/a" : $"{rss:F0} MiB")}");
                    await output.WriteLineAsync($"verified    {(verified ? "yes: buckets equal a full scan and DuckDB; latest values equal what was written" : "NO")}");
                }

                await output.WriteLineAsync(report.ToJsonString());
                return verified ? 0 : 1;
            }
            catch (Exception e) when (e is Grpc.Core.RpcException or HttpRequestException or IOException)
            {
                // A failed call: say what the server said last, and whether it is still alive.
                await progress.WriteLineAsync($"[bench] a call failed ({e.Message}); {server.Describe()}");
                throw;
            }
        }
        finally
        {
            if (temp is not null)
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
    }

    /// <summary>
    /// Every measured call carries this deadline, so a call that never completes fails the run with
    /// a status instead of hanging it (seen twice on freshly built datasets: the client waited for
    /// response headers of a request the server had no trace of; not understood yet).
    /// </summary>
    private static DateTime Deadline() => DateTime.UtcNow.AddSeconds(30);

    private static ReadDownsampledRequest Downsample(string runId, long start, long end) =>
        new() { RunIds = { runId }, Metric = Metric, Buckets = Buckets, StartStep = start, EndStep = end };

    /// <summary>A loss curve as float32: exponential decay plus Gaussian noise, like a real training log.</summary>
    private static float[] Curve(int length, int seed) => IngestBench.NoisyLossCurve(length, seed);

    private static async Task<Dataset> BuildAsync(string url, QueryBenchOptions o, TextWriter progress, CancellationToken cancellationToken)
    {
        using var client = new MetricStoreClient(url);
        var experiment = await client.GetOrCreateExperimentAsync("bench-query", cancellationToken);
        async Task<string> NewRun(string name) =>
            (await client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentId = experiment.ExperimentId, Name = name }, cancellationToken: cancellationToken)).RunId;

        // The long series first and alone, so that later seals cover all of it.
        var bigRun = await NewRun("query-big");
        var bigCurve = Curve(o.BigSteps, seed: 1);
        await SendAsync(url, [(bigRun, 0)], o.BigSteps, (_, step) => bigCurve[step], progress, cancellationToken);

        var smallRuns = new string[o.Runs];
        for (var i = 0; i < o.Runs; i++)
        {
            smallRuns[i] = await NewRun($"query-small-{i}");
        }

        var smallCurve = Curve(CurveLength, seed: 2);
        var halves = new[] { smallRuns.Index().Where(r => r.Index % 2 == 0), smallRuns.Index().Where(r => r.Index % 2 == 1) };
        await Task.WhenAll(halves.Select(half => SendAsync(url, [.. half.Select(r => (r.Item, r.Index))], o.RunSteps, (run, step) => smallCurve[SmallOffset(run, step)], progress, cancellationToken)));
        return new Dataset(bigRun, smallRuns, o.BigSteps, o.Runs, o.RunSteps);
    }

    internal static int SmallOffset(int run, long step) => (int)(((run * 7919L) + step) & (CurveLength - 1));

    /// <summary>Streams steps 0..steps-1 of each run's series in 100k-point requests, 8 in flight, and waits for every ack.</summary>
    private static async Task SendAsync(string url, (string RunId, int Index)[] runs, int steps, Func<int, long, float> value, TextWriter progress, CancellationToken cancellationToken)
    {
        using var channel = MetricStoreChannel.Create(new Uri(url), maxSendMessageBytes: 64 * 1024 * 1024);
        var ingest = new IngestService.IngestServiceClient(channel);
        using var call = ingest.Write(cancellationToken: cancellationToken);
        var writer = $"bench-query-{Guid.NewGuid():N}";
        var room = new SemaphoreSlim(8);
        ulong sent = 0;
        var acks = Task.Run(async () =>
        {
            ulong acked = 0;
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                var durable = call.ResponseStream.Current.DurableSeq;
                if (durable > acked)
                {
                    room.Release((int)(durable - acked));
                    acked = durable;
                }
            }

            return acked;
        }, cancellationToken);
        var buffer = new float[BatchPoints];
        var stepColumn = new long[BatchPoints];
        foreach (var (runId, index) in runs)
        {
            for (long first = 0; first < steps; first += BatchPoints)
            {
                var n = (int)Math.Min(BatchPoints, steps - first);
                for (var i = 0; i < n; i++)
                {
                    stepColumn[i] = first + i;
                    buffer[i] = value(index, first + i);
                }

                await room.WaitAsync(cancellationToken);
                var batch = new SeriesBatch { Key = new SeriesKey { RunId = runId, Metric = Metric } };
                batch.Steps.AddRange(new ArraySegment<long>(stepColumn, 0, n));
                batch.ValuesF32.AddRange(new ArraySegment<float>(buffer, 0, n));
                batch.TimestampsMs.Add(1_700_000_000_000 + first);
                await call.RequestStream.WriteAsync(new WriteRequest { WriterId = writer, Seq = ++sent, Batches = { batch } }, cancellationToken);
            }
        }

        await call.RequestStream.CompleteAsync();
        var acknowledged = await acks;
        if (acknowledged != sent)
        {
            throw new IOException($"the server acknowledged {acknowledged} of {sent} requests");
        }

        await progress.WriteLineAsync($"[bench] wrote {runs.Length} series x {steps:N0} points");
    }

    /// <summary>The all-column read and the chart-shaped one (step and value only, float32 values when exact).</summary>
    private const string AllColumns = "";
    private const string StepValueAuto = "&columns=step,value&value_type=auto";

    /// <summary>One full read of the series as Arrow; the points when <paramref name="keep"/>, and whether values came as float32.</summary>
    private static async Task<(long[] Steps, double[] Values, bool Float32)?> ReadArrowAsync(HttpClient http, string runId, string options, bool keep, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/query/points?run_id={runId}&metric={Uri.EscapeDataString(Metric)}&max_chunk_points=1000000{options}");
        request.Headers.Accept.ParseAdd("application/vnd.apache.arrow.stream");
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        using var reader = new ArrowStreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
        var steps = new List<long>();
        var values = new List<double>();
        long count = 0;
        var float32 = false;
        while (await reader.ReadNextRecordBatchAsync(cancellationToken) is { } batch)
        {
            using (batch)
            {
                count += batch.Length;
                float32 = batch.Column(1) is FloatArray;
                if (keep)
                {
                    steps.AddRange(((Int64Array)batch.Column(0)).Values);
                    if (batch.Column(1) is FloatArray floats)
                    {
                        foreach (var f in floats.Values)
                        {
                            values.Add(f);
                        }
                    }
                    else
                    {
                        values.AddRange(((DoubleArray)batch.Column(1)).Values);
                    }
                }
            }
        }

        return keep ? ([.. steps], [.. values], float32) : (count > 0 ? ([], [], float32) : null);
    }

    /// <summary>One warm-up read (kept, for verification), then the median time of 5 reads.</summary>
    private static async Task<((long[] Steps, double[] Values, bool Float32) Points, double Ms)> TimeArrowReadsAsync(HttpClient http, string runId, string options, CancellationToken cancellationToken)
    {
        var points = (await ReadArrowAsync(http, runId, options, keep: true, cancellationToken))!.Value;
        var times = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            var stopwatch = Stopwatch.StartNew();
            await ReadArrowAsync(http, runId, options, keep: false, cancellationToken);
            times.Add(stopwatch.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return (points, times[2]);
    }

    /// <summary>The same buckets computed by DuckDB over the server's Parquet files (one warm-up, median of 5).</summary>
    private static (double Ms, Dictionary<long, (long Count, double Sum, double Min, double Max)> Buckets) DuckDbDownsample(string data, string runId, long start, long width)
    {
        var segments = Path.Combine(data, "segments").Replace("'", "''", StringComparison.Ordinal);
        using var connection = new DuckDBConnection("Data Source=:memory:");
        connection.Open();
        using var lookup = connection.CreateCommand();
        lookup.CommandText = $"SELECT DISTINCT series_id FROM read_parquet('{segments}/*-s.parquet') WHERE run_id = '{runId}' AND metric = '{Metric}' AND labels = ''";
        var seriesId = Convert.ToInt32(lookup.ExecuteScalar(), CultureInfo.InvariantCulture);
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT (step - {start}) // {width} AS b, count(*), sum(value::DOUBLE), min(value), max(value), avg(value),
                   min(step), max(step), arg_min(value, step), arg_max(value, step)
            FROM read_parquet('{segments}/*-[fd].parquet', union_by_name = true)
            WHERE series_id = {seriesId}
            GROUP BY b ORDER BY b
            """;
        var result = new Dictionary<long, (long, double, double, double)>();
        var times = new List<double>();
        for (var i = 0; i < 6; i++)
        {
            result.Clear();
            var stopwatch = Stopwatch.StartNew();
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                result[Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture)] = (
                    Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture),
                    reader.GetDouble(2),
                    Convert.ToDouble(reader.GetValue(3), CultureInfo.InvariantCulture),
                    Convert.ToDouble(reader.GetValue(4), CultureInfo.InvariantCulture));
            }

            if (i > 0)
            {
                times.Add(stopwatch.Elapsed.TotalMilliseconds);
            }
        }

        times.Sort();
        return (times[times.Count / 2], result);
    }

    /// <summary>Every step once, with the value that was written.</summary>
    private static bool VerifyRaw(List<string> problems, string what, QueryBenchOptions o, (long[] Steps, double[] Values) raw)
    {
        var curve = Curve(o.BigSteps, seed: 1);
        if (raw.Steps.Length != o.BigSteps)
        {
            problems.Add($"{what} returned {raw.Steps.Length} points, expected {o.BigSteps}");
            return false;
        }

        for (var i = 0; i < raw.Steps.Length; i++)
        {
            if (raw.Steps[i] != i || raw.Values[i] != curve[i])
            {
                problems.Add($"{what} point {i}: ({raw.Steps[i]}, {raw.Values[i]}), expected ({i}, {curve[i]})");
                return false;
            }
        }

        return true;
    }

    private static void Verify(List<string> problems, Dataset dataset, QueryBenchOptions o, ReadDownsampledResponse full, (long[] Steps, double[] Values) raw, Dictionary<long, (long Count, double Sum, double Min, double Max)> duck, LatestValuesResponse latest)
    {
        if (!VerifyRaw(problems, "raw read", o, raw))
        {
            return;
        }

        // Buckets against a full scan of the raw points, and against DuckDB.
        var s = full.Series[0];
        if (s.Count.Count != Buckets)
        {
            problems.Add($"{s.Count.Count} buckets, expected {Buckets}");
        }

        for (var b = 0; b < s.Count.Count; b++)
        {
            var lo = (int)s.BucketStartStep[b];
            var hi = (int)s.BucketEndStep[b];
            var span = raw.Values.AsSpan(lo, hi - lo + 1);
            double sum = 0, min = double.PositiveInfinity, max = double.NegativeInfinity;
            foreach (var v in span)
            {
                sum += v;
                min = Math.Min(min, v);
                max = Math.Max(max, v);
            }

            var bucket = (lo - full.StartStep) / full.BucketWidth;
            var ok = s.Count[b] == span.Length && s.Min[b] == min && s.Max[b] == max
                && s.FirstStep[b] == lo && s.FirstValue[b] == span[0] && s.LastStep[b] == hi && s.LastValue[b] == span[^1]
                && Math.Abs(s.Mean[b] - (sum / span.Length)) <= 1e-12 * Math.Abs(sum / span.Length)
                && duck.TryGetValue(bucket, out var d) && d.Count == s.Count[b] && d.Min == min && d.Max == max
                && Math.Abs(d.Sum - sum) <= 1e-9 * Math.Abs(sum);
            if (!ok)
            {
                problems.Add($"bucket {b} [{lo}, {hi}]: count {s.Count[b]} min {s.Min[b]} max {s.Max[b]} mean {s.Mean[b]}; scan {span.Length} {min} {max} {sum / span.Length}; duckdb {(duck.TryGetValue(bucket, out var dd) ? dd.ToString() : "missing")}");
                return;
            }
        }

        // Latest values: the value written at each short run's last step.
        var smallCurve = Curve(CurveLength, seed: 2);
        var byRun = latest.Summaries.ToDictionary(x => x.Key.RunId);
        for (var i = 0; i < dataset.SmallRuns.Length; i++)
        {
            var expected = smallCurve[SmallOffset(i, o.RunSteps - 1)];
            if (!byRun.TryGetValue(dataset.SmallRuns[i], out var summary) || summary.Count != o.RunSteps || summary.LastStep != o.RunSteps - 1 || summary.LastValue != expected)
            {
                problems.Add($"latest value of run {i}: {summary}, expected {o.RunSteps} points ending ({o.RunSteps - 1}, {expected})");
                return;
            }
        }
    }

    /// <summary>What was built in a data directory, so a later run with --data reuses it.</summary>
    private sealed record Dataset(string BigRun, string[] SmallRuns, int BigSteps, int Runs, int RunSteps)
    {
        private const string FileName = "bench-query.json";

        public static Dataset? Load(string data, QueryBenchOptions o)
        {
            var path = Path.Combine(data, FileName);
            if (!File.Exists(path))
            {
                return null;
            }

            var dataset = JsonSerializer.Deserialize<Dataset>(File.ReadAllText(path));
            return dataset is not null && dataset.BigSteps == o.BigSteps && dataset.Runs == o.Runs && dataset.RunSteps == o.RunSteps
                ? dataset
                : throw new UsageException($"{data} holds a query bench dataset of other sizes ({dataset?.BigSteps} / {dataset?.Runs} x {dataset?.RunSteps}); use another --data");
        }

        public void Save(string data) => File.WriteAllText(Path.Combine(data, FileName), JsonSerializer.Serialize(this));
    }
}
