using MetricStore.Protocol.V1;
using MetricStore.Server.Grpc;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>
/// The bound on decoded write requests over all ingest streams (<see cref="IngestAdmission"/>):
/// its rules alone, then on a real server whose budget is far smaller than what its writers keep
/// in flight, where every point must still arrive exactly once.
/// </summary>
public sealed class IngestAdmissionTests
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Requests_wait_in_arrival_order_for_the_room_earlier_ones_release()
    {
        var admission = new IngestAdmission(100);
        var first = await admission.AdmitAsync(60, CancellationToken.None);
        Assert.Equal(60, first);

        // 50 does not fit beside 60; 10 would, but it arrived after 50 and waits behind it.
        var large = admission.AdmitAsync(50, CancellationToken.None).AsTask();
        var small = admission.AdmitAsync(10, CancellationToken.None).AsTask();
        Assert.False(large.IsCompleted);
        Assert.False(small.IsCompleted);
        Assert.Equal(2, admission.Waiting);
        Assert.Equal(2, admission.Waits);

        admission.Release(first);
        Assert.Equal(50, await large.WaitAsync(s_patience));
        Assert.Equal(10, await small.WaitAsync(s_patience));
        Assert.Equal(60, admission.AdmittedBytes);

        // A request larger than the whole budget takes all of it, once nothing else is admitted.
        var huge = admission.AdmitAsync(1_000, CancellationToken.None).AsTask();
        Assert.False(huge.IsCompleted);
        admission.Release(50);
        Assert.False(huge.IsCompleted);
        admission.Release(10);
        Assert.Equal(100, await huge.WaitAsync(s_patience));
        admission.Release(100);
        Assert.Equal(0, admission.AdmittedBytes);
    }

    [Fact]
    public async Task A_cancelled_wait_gives_its_place_to_the_requests_behind_it()
    {
        var admission = new IngestAdmission(100);
        var held = await admission.AdmitAsync(90, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var blocked = admission.AdmitAsync(50, cancel.Token).AsTask();
        var behind = admission.AdmitAsync(10, CancellationToken.None).AsTask();
        Assert.False(behind.IsCompleted);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => blocked.WaitAsync(s_patience));
        Assert.Equal(10, await behind.WaitAsync(s_patience)); // 90 + 10 fit once 50 no longer stands in front
        Assert.Equal(0, admission.Waiting);
        admission.Release(held);
        admission.Release(10);
        Assert.Equal(0, admission.AdmittedBytes);
    }

    /// <summary>
    /// Four writers each pipeline 24 requests of 10,000 points (about 300 KB decoded each: 7 MB in
    /// all) into a server that admits 1 MiB at a time: streams wait for room, nothing is refused
    /// or lost, every point is stored once, and all the room is given back.
    /// </summary>
    [Fact]
    public async Task Writers_that_keep_more_in_flight_than_the_budget_wait_and_lose_nothing()
    {
        await using var server = await TestServer.StartAsync(configure: o => o with { IngestBufferMiB = 1 });
        var experiment = Unique.Name("admission");
        await server.Client.CreateExperimentAsync(experiment);
        var run = await server.Client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = experiment });
        const int writers = 4;
        const int requests = 24;
        const int points = 10_000;
        await Task.WhenAll(Enumerable.Range(0, writers).Select(async w =>
        {
            using var call = server.Client.Ingest.Write();
            for (var seq = 1; seq <= requests; seq++)
            {
                var batch = new SeriesBatch { Key = new SeriesKey { RunId = run.RunId, Metric = "loss" } };
                batch.Key.Labels["rank"] = w.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var first = (long)(seq - 1) * points;
                batch.Steps.AddRange(Enumerable.Range(0, points).Select(i => first + i));
                batch.Values.AddRange(Enumerable.Range(0, points).Select(i => (double)(first + i + w)));
                var request = new WriteRequest { WriterId = $"admission-{w}", Seq = (ulong)seq };
                request.Batches.Add(batch);
                await call.RequestStream.WriteAsync(request);
            }

            await call.RequestStream.CompleteAsync();
            ulong durable = 0;
            while (await call.ResponseStream.MoveNext(CancellationToken.None).WaitAsync(s_patience))
            {
                Assert.Empty(call.ResponseStream.Current.Rejected);
                durable = call.ResponseStream.Current.DurableSeq;
            }

            Assert.Equal((ulong)requests, durable);
        })).WaitAsync(TimeSpan.FromMinutes(2));

        var admission = server.Server.IngestAdmission;
        Assert.True(admission.Waits > 0, "no request waited for room: the budget bounded nothing");
        await Eventually.Until(() => admission.AdmittedBytes == 0, "every admitted request to give its room back");
        for (var w = 0; w < writers; w++)
        {
            var (steps, values, _) = await server.Client.ReadSeriesAsync(run.RunId, "loss", new Dictionary<string, string> { ["rank"] = w.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            Assert.Equal(requests * points, steps.Length);
            Assert.Equal(Enumerable.Range(0, requests * points).Select(i => (long)i), steps);
            Assert.Equal(Enumerable.Range(0, requests * points).Select(i => (double)(i + w)), values);
        }
    }

    [Fact]
    public async Task A_budget_under_one_mebibyte_is_refused_naming_it()
    {
        using var directory = new TempDirectory();
        var e = await Assert.ThrowsAsync<Core.MetricStoreException>(() => TestServer.StartAsync(directory.Path, configure: o => o with { IngestBufferMiB = 0 }));
        Assert.Contains("ingest buffer 0 MiB", e.Message, StringComparison.Ordinal);
    }
}
