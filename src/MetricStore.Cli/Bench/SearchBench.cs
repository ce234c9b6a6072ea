using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using MetricStore.Client;
using MetricStore.Core;
using MetricStore.Protocol.V1;
using MetricStore.Tracking;

namespace MetricStore.Cli.Bench;

/// <summary>What 'metricstore bench search' was asked to do.</summary>
internal sealed record SearchBenchOptions(int Runs, int Iterations, bool Json);

/// <summary>
/// The run search benchmark: imports runs with 20 params, 5 tags and 10 metric summaries each
/// straight into a temp data directory's tracking database (the bulk path, timed apart), starts a
/// server on it as a child process, and times SearchRuns over gRPC for three typical searches, each
/// checked against a brute-force evaluation of the generated runs.
/// </summary>
internal static class SearchBench
{
    private const string Experiment = "bench-search";
    private static readonly string[] s_lrs = ["0.1", "0.01", "0.001", "0.0001"];
    private static readonly string[] s_teams = ["nlp", "cv", "rl", "speech", "infra"];
    private static readonly TimeSpan s_warmUp = TimeSpan.FromSeconds(3);

    public static async Task<int> RunAsync(SearchBenchOptions o, TextWriter output, TextWriter progress, CancellationToken cancellationToken)
    {
        var temp = Path.Combine(Path.GetTempPath(), "metricstore-bench", Guid.NewGuid().ToString("N"));
        var data = Path.Combine(temp, "data");
        Directory.CreateDirectory(data);
        try
        {
            var runs = Generate(o.Runs);
            var load = Stopwatch.StartNew();
            using (var store = TrackingStore.Open(new TrackingStoreOptions { DataDirectory = data }))
            {
                store.CreateExperiment(Experiment);
                for (var i = 0; i < runs.Count; i += 10_000)
                {
                    store.ImportRuns(Experiment, runs.GetRange(i, Math.Min(10_000, runs.Count - i)));
                }
            }

            var loadSeconds = load.Elapsed.TotalSeconds;
            await progress.WriteLineAsync($"[bench] imported {runs.Count:N0} runs (20 params, 5 tags, 10 metric summaries each) in {loadSeconds:F1} s");

            using var server = await BenchServer.StartAsync(data, "sync", discard: false, cancellationToken);
            using var channel = MetricStoreChannel.Create(new Uri(server.GrpcUrl), maxReceiveMessageBytes: 64 * 1024 * 1024);
            var tracking = new TrackingService.TrackingServiceClient(channel);
            var searches = new (string Name, SearchRunsRequest Request, Func<ImportedRun, bool> Match, Func<IEnumerable<ImportedRun>, IEnumerable<ImportedRun>> Order)[]
            {
                ("filter", Request("params.lr = '0.01' and metrics.val_acc > 0.9"), r => r.Params["lr"] == "0.01" && Last(r, "val_acc") > 0.9, Newest),
                ("tag_in", Request("tags.team IN ('nlp', 'cv')"), r => r.Tags["team"] is "nlp" or "cv", Newest),
                // Matches almost nothing, so the whole experiment is scanned (the worst case for a filter).
                ("rare", Request("params.p1 = '7' and tags.t1 = 'v3' and metrics.loss < 0.01"), r => r.Params["p1"] == "7" && r.Tags["t1"] == "v3" && Last(r, "loss") < 0.01, Newest),
                ("order", Request("", "metrics.val_acc desc"), _ => true, rs => rs.OrderByDescending(r => Last(r, "val_acc")).ThenByDescending(r => r.StartTimeMs).ThenByDescending(r => r.Id, StringComparer.Ordinal)),
            };

            var report = new JsonObject { ["runs"] = runs.Count, ["load_s"] = Math.Round(loadSeconds, 1) };
            var verified = true;
            foreach (var (name, request, match, order) in searches)
            {
                var first = await tracking.SearchRunsAsync(request, cancellationToken: cancellationToken);
                var expected = order(runs.Where(match)).Take(100).Select(r => r.Id).ToList();
                var good = expected.SequenceEqual(first.Runs.Select(r => r.RunId));
                if (!good)
                {
                    verified = false;
                    await progress.WriteLineAsync($"[bench] MISMATCH in '{name}': {first.Runs.Count} runs, expected {expected.Count}");
                }

                var times = await BenchTiming.TimeAsync(o.Iterations, s_warmUp, () => tracking.SearchRunsAsync(request, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: cancellationToken).ResponseAsync);
                report[$"{name}_p50_ms"] = Math.Round(BenchTiming.Percentile(times, 0.5), 2);
                report[$"{name}_p99_ms"] = Math.Round(BenchTiming.Percentile(times, 0.99), 2);
                await progress.WriteLineAsync($"[bench] {name,-7} {request.Filter} {string.Join(",", request.OrderBy)}: p50 {BenchTiming.Percentile(times, 0.5):F2} ms, p99 {BenchTiming.Percentile(times, 0.99):F2} ms ({runs.Count(match):N0} matches, first page of 100{(good ? ", verified" : "")})");
            }

            report["verified"] = verified;
            report["iterations"] = o.Iterations;
            if (!o.Json)
            {
                await output.WriteLineAsync($"search    param + metric filter  p50 {report["filter_p50_ms"]} ms  p99 {report["filter_p99_ms"]} ms over {runs.Count:N0} runs");
                await output.WriteLineAsync($"search    tag IN list            p50 {report["tag_in_p50_ms"]} ms  p99 {report["tag_in_p99_ms"]} ms");
                await output.WriteLineAsync($"search    rare 3-way filter      p50 {report["rare_p50_ms"]} ms  p99 {report["rare_p99_ms"]} ms (scans every run)");
                await output.WriteLineAsync($"search    order by a metric      p50 {report["order_p50_ms"]} ms  p99 {report["order_p99_ms"]} ms (first 100)");
                await output.WriteLineAsync($"verified  {(verified ? "yes: every first page equals a brute-force search of the generated runs" : "NO")}");
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

    private static SearchRunsRequest Request(string filter, params string[] orderBy) =>
        new() { Filter = filter, ExperimentNames = { Experiment }, OrderBy = { orderBy }, PageSize = 100 };

    private static IEnumerable<ImportedRun> Newest(IEnumerable<ImportedRun> runs) =>
        runs.OrderByDescending(r => r.StartTimeMs).ThenByDescending(r => r.Id, StringComparer.Ordinal);

    private static double Last(ImportedRun run, string metric) => run.Metrics.First(m => m.Metric == metric).Last;

    /// <summary>Runs with params p0..p19 (lr among them), tags t0..t4 (team among them), metrics m0..m9 (val_acc among them).</summary>
    private static List<ImportedRun> Generate(int count)
    {
        var random = new Random(11);
        var runs = new List<ImportedRun>(count);
        for (var i = 0; i < count; i++)
        {
            var id = RunId.New();
            var parameters = new Dictionary<string, string> { ["lr"] = s_lrs[random.Next(s_lrs.Length)] };
            for (var p = 1; p < 20; p++)
            {
                parameters[$"p{p}"] = random.Next(100).ToString(CultureInfo.InvariantCulture);
            }

            var tags = new Dictionary<string, string> { ["team"] = s_teams[random.Next(s_teams.Length)] };
            for (var t = 1; t < 5; t++)
            {
                tags[$"t{t}"] = $"v{random.Next(10)}";
            }

            var metrics = new List<RunMetricSummary>();
            foreach (var name in new[] { "val_acc", "loss", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9" })
            {
                var last = Math.Round(random.NextDouble(), 6);
                metrics.Add(new RunMetricSummary(id, name, 1000, last, 999, last / 2, Math.Min(1, last * 1.5), last));
            }

            runs.Add(new ImportedRun(id, $"run-{i}", Core.RunStatus.Finished, 1_700_000_000_000 + (i * 1000L), 1_700_000_000_000 + (i * 1000L) + 500, parameters, tags, metrics));
        }

        return runs;
    }

}
