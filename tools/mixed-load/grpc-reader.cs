// The gRPC twin of reader.py: reads every run's full train/loss series with ReadSeries, over and
// over, from THREADS concurrent calls (2 unless given), until STOP_FILE exists. With RUN_NAME, only
// the runs of that name (query-big: the 10M-step series).
//
//   dotnet run tools/mixed-load/grpc-reader.cs -- GRPC_URL STOP_FILE [THREADS [RUN_NAME]]
#:project ../../src/MetricStore.Client/MetricStore.Client.csproj
using MetricStore.Client;
using MetricStore.Protocol.V1;

var (url, stop) = (args[0], args[1]);
var threads = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 2;
var filter = args.Length > 3 ? $"name = \"{args[3]}\"" : "";
using var client = new MetricStoreClient(url);
var runs = new List<string>();
var token = "";
do
{
    var page = await client.Tracking.SearchRunsAsync(new SearchRunsRequest { PageSize = 500, PageToken = token, Filter = filter });
    runs.AddRange(page.Runs.Select(r => r.RunId));
    token = page.NextPageToken;
}
while (token.Length > 0);
Console.WriteLine($"{runs.Count} runs");

var reads = new long[threads];
var points = new long[threads];
await Task.WhenAll(Enumerable.Range(0, threads).Select(k => Task.Run(async () =>
{
    for (var i = k; !File.Exists(stop); i += threads)
    {
        var run = runs[i % runs.Count];
        try
        {
            using var call = client.Query.ReadSeries(new ReadSeriesRequest { Key = new SeriesKey { RunId = run, Metric = "train/loss" } });
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                points[k] += call.ResponseStream.Current.Steps.Count;
            }

            reads[k]++;
        }
        catch (Exception e) // counted; a failed read must not end the load
        {
            Console.WriteLine($"read failed {run} {e.Message}");
            await Task.Delay(500);
        }
    }
})));
Console.WriteLine($"points={points.Sum()}");
Console.WriteLine($"reads={reads.Sum()}");
