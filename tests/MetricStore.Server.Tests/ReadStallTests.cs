using Grpc.Core;
using MetricStore.Protocol.V1;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>
/// A streamed read holds its snapshot (replaced files stay on disk) until it ends, so the server
/// ends one whose client stops accepting data (<see cref="MetricStoreServerOptions.ReadStallTimeout"/>),
/// over gRPC and over HTTP, and leaves a client that keeps reading alone.
/// </summary>
public sealed class ReadStallTests
{
    private const int Points = 3_000_000; // far more than HTTP/2 windows and socket buffers hold

    private static async Task<(TestServer Server, string RunId)> StartWithSeriesAsync(Func<MetricStoreServerOptions, MetricStoreServerOptions>? configure = null)
    {
        var server = await TestServer.StartAsync(configure: o => (configure ?? (x => x))(o with { ReadStallTimeout = TimeSpan.FromSeconds(2) }));
        var name = Unique.Name("stall");
        await server.Client.CreateExperimentAsync(name);
        var runId = (await server.Client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = name })).RunId;
        using var call = server.Client.Ingest.Write();
        const int PerRequest = 500_000;
        for (var seq = 1; seq <= Points / PerRequest; seq++)
        {
            var batch = new SeriesBatch { Key = new SeriesKey { RunId = runId, Metric = "loss" } };
            var first = (seq - 1) * PerRequest;
            batch.Steps.AddRange(Enumerable.Range(first, PerRequest).Select(i => (long)i));
            batch.Values.AddRange(Enumerable.Range(first, PerRequest).Select(i => i * 0.5));
            batch.TimestampsMs.Add(1_700_000_000_000);
            var request = new WriteRequest { WriterId = "stall", Seq = (ulong)seq };
            request.Batches.Add(batch);
            await call.RequestStream.WriteAsync(request);
        }

        await call.RequestStream.CompleteAsync();
        while (await call.ResponseStream.MoveNext(CancellationToken.None) && call.ResponseStream.Current.DurableSeq < Points / PerRequest)
        {
        }

        return (server, runId);
    }

    private static async Task WaitForStallWarningAsync(TestServer server, int count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (server.Warnings.Count(w => w.Contains("Ended a streamed read", StringComparison.Ordinal)) < count && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Equal(count, server.Warnings.Count(w => w.Contains("Ended a streamed read", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_read_whose_client_stops_reading_is_ended_and_one_that_keeps_reading_is_not()
    {
        var (server, runId) = await StartWithSeriesAsync();
        await using var _ = server;
        var key = new SeriesKey { RunId = runId, Metric = "loss" };

        // gRPC: one chunk, then nothing.
        using (var call = server.Client.Query.ReadSeries(new ReadSeriesRequest { Key = key, MaxChunkPoints = 1_000 }))
        {
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            await WaitForStallWarningAsync(server, 1);
            var received = 0L;
            var error = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    received += call.ResponseStream.Current.Steps.Count;
                }
            });
            Assert.True(received < Points, $"{received} points after the read was ended ({error.Status})");
        }

        // HTTP (Arrow): the first bytes, then nothing.
        using (var response = await server.Http.GetAsync($"/v1/query/points?run_id={runId}&metric=loss&max_chunk_points=1000&format=arrow", HttpCompletionOption.ResponseHeadersRead))
        {
            response.EnsureSuccessStatusCode();
            using var body = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[1 << 16];
            Assert.True(await body.ReadAsync(buffer) > 0);
            await WaitForStallWarningAsync(server, 2);
            long bytes = 0;
            await Assert.ThrowsAnyAsync<IOException>(async () =>
            {
                int n;
                while ((n = await body.ReadAsync(buffer)) > 0)
                {
                    bytes += n;
                }
            });
            Assert.True(bytes < Points * 24L, $"{bytes} bytes after the read was ended");
        }

        // A client that keeps reading, however long the whole read takes, gets every point.
        using (var call = server.Client.Query.ReadSeries(new ReadSeriesRequest { Key = key, MaxChunkPoints = 100_000 }))
        {
            var received = 0L;
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                received += call.ResponseStream.Current.Steps.Count;
                await Task.Delay(100); // 30 chunks: 3 s in all, longer than the timeout, well under it per chunk
            }

            Assert.Equal(Points, received);
        }

        using (var response = await server.Http.GetAsync($"/v1/query/points?run_id={runId}&metric=loss&max_chunk_points=100000&format=arrow", HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new Apache.Arrow.Ipc.ArrowStreamReader(await response.Content.ReadAsStreamAsync());
            var received = 0L;
            while (await reader.ReadNextRecordBatchAsync() is { } batch)
            {
                using (batch)
                {
                    received += batch.Length;
                }

                await Task.Delay(100);
            }

            Assert.Equal(Points, received);
        }

        Assert.Equal(2, server.Warnings.Count(w => w.Contains("Ended a streamed read", StringComparison.Ordinal)));
        Assert.Empty(server.Errors); // an ended read is not a server error
    }

    /// <summary>
    /// Only the client's time counts: a scan that waits its turn for columns behind a stalled read
    /// (<see cref="MetricStoreServerOptions.ScanMemoryMiB"/>) is not ended with it, and reads every
    /// point once the stalled one is ended and gives its columns back.
    /// </summary>
    [Fact]
    public async Task A_read_waiting_for_scan_memory_behind_a_stalled_one_is_not_ended()
    {
        // 5 s, not 2: on a loaded machine the second read must reach its wait before the stalled one is ended.
        var (server, runId) = await StartWithSeriesAsync(o => o with { QueryCacheMiB = 1, ScanMemoryMiB = 1, ReadStallTimeout = TimeSpan.FromSeconds(5) });
        await using var _ = server;
        var storage = server.Server.Storage;
        await storage.SealNowAsync(); // three row groups, far more than the 1 MiB cache: every full read is a scan
        var url = $"/v1/query/points?run_id={runId}&metric=loss&max_chunk_points=1000&format=arrow";

        using (var stalled = await server.Http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead))
        {
            stalled.EnsureSuccessStatusCode();
            using var body = await stalled.Content.ReadAsStreamAsync();
            Assert.True(await body.ReadAsync(new byte[1 << 16]) > 0);
            // The Arrow schema goes out before the read's first window takes its columns.
            await Eventually.Until(() => storage.ScanMemoryUse.Used > 0, "the stalled read to hold the only set of columns");

            var waiting = Task.Run(async () =>
            {
                using var response = await server.Http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
                using var reader = new Apache.Arrow.Ipc.ArrowStreamReader(await response.Content.ReadAsStreamAsync());
                var received = 0L;
                while (await reader.ReadNextRecordBatchAsync() is { } batch)
                {
                    using (batch)
                    {
                        received += batch.Length;
                    }
                }

                return received;
            });
            await Eventually.Until(() => storage.ScanMemoryUse.Waiting != 0, "the second read to wait for scan memory");
            Assert.Equal(1, storage.ScanMemoryUse.Waiting);
            Assert.Equal(Points, await waiting.WaitAsync(TimeSpan.FromSeconds(60))); // after the stalled read was ended, 5 s on
        }

        Assert.Equal(1, server.Warnings.Count(w => w.Contains("Ended a streamed read", StringComparison.Ordinal)));
        // The read's end on the server may come just after the client's.
        await Eventually.Until(() => storage.ScanMemoryUse.Used == 0, "the reads to give back their scan memory");
        Assert.Empty(server.Errors);
    }
}
