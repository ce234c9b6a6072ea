using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Grpc.Core;
using MetricStore.Protocol.V1;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>SearchRuns on a real server: params, tags, and metric summaries copied from ingested points.</summary>
public sealed class SearchRunsTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private async Task<string> RunAsync(string experiment, string lr, string team, double[] accuracy)
    {
        var run = await fixture.Server.Client.Tracking.CreateRunAsync(new CreateRunRequest
        {
            ExperimentName = experiment,
            Params = { ["lr"] = lr },
            Tags = { ["team"] = team },
        });
        var batch = new SeriesBatch { Key = new SeriesKey { RunId = run.RunId, Metric = "val_acc" } };
        batch.Steps.AddRange(Enumerable.Range(0, accuracy.Length).Select(i => (long)i));
        batch.Values.AddRange(accuracy);
        using var call = fixture.Server.Client.Ingest.Write();
        await call.RequestStream.WriteAsync(new WriteRequest { WriterId = Unique.Name("w"), Seq = 1, Batches = { batch } });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        return run.RunId;
    }

    [Fact]
    public async Task Best_run_by_metric_and_param_over_grpc_and_http()
    {
        var experiment = Unique.Name("search");
        await fixture.Server.Client.CreateExperimentAsync(experiment);
        var low = await RunAsync(experiment, "0.01", "nlp", [0.5, 0.7, 0.93]);
        var high = await RunAsync(experiment, "0.1", "cv", [0.6, 0.95, 0.97]);
        var peakedEarly = await RunAsync(experiment, "0.01", "nlp", [0.99, 0.2]);
        await fixture.Server.Server.SyncMetricSummariesAsync(); // the server also does it every second

        var request = new SearchRunsRequest { Filter = "metrics.val_acc > 0.9 and params.lr = '0.01'", ExperimentNames = { experiment } };
        var found = await fixture.Server.Client.Tracking.SearchRunsAsync(request);
        Assert.Equal([low], found.Runs.Select(r => r.RunId)); // peakedEarly's last value is 0.2

        var best = await fixture.Server.Client.Tracking.SearchRunsAsync(new SearchRunsRequest { ExperimentNames = { experiment }, OrderBy = { "metrics.val_acc.max desc" }, PageSize = 2 });
        Assert.Equal([peakedEarly, high], best.Runs.Select(r => r.RunId));
        Assert.NotEmpty(best.NextPageToken);

        var http = await fixture.Server.Http.PostAsJsonAsync("/v1/runs/search", new { filter = "tags.team IN ('cv') or metrics.val_acc.min < 0.3", experiment_names = new[] { experiment } });
        var text = await http.Content.ReadAsStringAsync();
        Assert.True(http.IsSuccessStatusCode, text);
        var ids = JsonDocument.Parse(text).RootElement.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("runId").GetString()).ToHashSet();
        Assert.Equal(new HashSet<string?> { high, peakedEarly }, ids);
    }

    [Fact]
    public async Task A_syntax_error_is_invalid_argument_with_the_position()
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () => await fixture.Server.Client.Tracking.SearchRunsAsync(new SearchRunsRequest { Filter = "params.lr = " }));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("position 13", error.Status.Detail, StringComparison.Ordinal);
        var http = await fixture.Server.Http.PostAsJsonAsync("/v1/runs/search", new { filter = "colour = 'red'" });
        Assert.Equal(HttpStatusCode.BadRequest, http.StatusCode);
        Assert.Contains("unknown field", await http.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
