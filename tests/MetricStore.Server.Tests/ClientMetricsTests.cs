using MetricStore.Client;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>ActiveRun.Log through the real client's background sender.</summary>
public sealed class ClientMetricsTests
{
    [Fact]
    public async Task Logged_points_are_durable_after_flush_and_dispose()
    {
        await using var server = await TestServer.StartAsync();
        string runId;
        await using (var run = await server.Client.StartRunAsync(Unique.Name("log")))
        {
            runId = run.Id;
            for (var step = 0; step < 25_000; step++)
            {
                run.Log("train/loss", step, 1.0 / (step + 1));
                run.Log("lr", step, 0.001f);
            }

            await run.FlushAsync();
            Assert.Equal(25_000, (await server.Client.ReadSeriesAsync(runId, "train/loss")).Steps.Length);
            run.Log(25_000, new Dictionary<string, double> { ["train/loss"] = 0, ["val/acc"] = 0.9 });
        }

        var loss = await server.Client.ReadSeriesAsync(runId, "train/loss");
        Assert.Equal(25_001, loss.Steps.Length);
        Assert.Equal(1.0 / 11, loss.Values[10]);
        Assert.Equal(0.001f, (float)(await server.Client.ReadSeriesAsync(runId, "lr")).Values[7]);
        var acc = await server.Client.ReadSeriesAsync(runId, "val/acc");
        Assert.Equal(new[] { 0.9 }, acc.Values);
    }

    [Fact]
    public async Task Ranks_attached_to_one_run_log_separate_labelled_series()
    {
        await using var server = await TestServer.StartAsync();
        await using var owner = await server.Client.StartRunAsync(Unique.Name("ddp"), options: new RunStartOptions { Labels = new Dictionary<string, string> { ["rank"] = "0" } });
        await using (var rank1 = await server.Client.AttachRunAsync(owner.Id, new Dictionary<string, string> { ["rank"] = "1" }))
        {
            owner.Log("loss", 1, 0.5);
            rank1.Log("loss", 1, 0.7);
        }

        await owner.FlushAsync();
        var rank0 = await server.Client.ReadSeriesAsync(owner.Id, "loss", new Dictionary<string, string> { ["rank"] = "0" });
        var rank1Read = await server.Client.ReadSeriesAsync(owner.Id, "loss", new Dictionary<string, string> { ["rank"] = "1" });
        Assert.Equal(new[] { 0.5 }, rank0.Values);
        Assert.Equal(new[] { 0.7 }, rank1Read.Values);
        Assert.Equal(Protocol.V1.RunStatus.Running, (await server.Client.GetRunAsync(owner.Id)).Status);
    }

    [Fact]
    public async Task Logging_a_labelled_series_allocates_nothing_per_point_on_the_calling_thread()
    {
        await using var server = await TestServer.StartAsync();
        await using var run = await server.Client.StartRunAsync(Unique.Name("alloc"), options: new RunStartOptions { Labels = new Dictionary<string, string> { ["rank"] = "3" } });

        // Warm up: the series buffer grows to its working size once.
        for (var step = 0; step < 20_000; step++)
        {
            run.Log("loss", step, 1.0);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var step = 20_000; step < 25_000; step++)
        {
            run.Log("loss", step, 1.0);
        }

        var perPoint = (GC.GetAllocatedBytesForCurrentThread() - before) / 5_000.0;
        Assert.True(perPoint < 1, $"{perPoint:F1} bytes allocated per logged point");
        await run.EndAsync();
        Assert.Equal(25_000, (await server.Client.ReadSeriesAsync(run.Id, "loss", new Dictionary<string, string> { ["rank"] = "3" })).Steps.Length);
    }

    [Fact]
    public async Task A_server_restart_while_logging_loses_nothing()
    {
        using var data = new TempDirectory();
        var server = await TestServer.StartAsync(data.Path);
        var grpcPort = server.Server.GrpcAddress.Port;
        using var client = new MetricStoreClient(new MetricStoreClientOptions
        {
            Address = server.Server.GrpcAddress,
            Metrics = new MetricLoggingOptions { FlushInterval = TimeSpan.FromMilliseconds(20), MaxReconnectDelay = TimeSpan.FromMilliseconds(200) },
        });
        var run = await client.StartRunAsync(Unique.Name("restart"));
        for (var step = 0; step < 5_000; step++)
        {
            run.Log("loss", step, step);
        }

        await run.FlushAsync();
        await server.DisposeAsync();

        // Logged while the server is down: buffered, then sent once it is back.
        for (var step = 5_000; step < 10_000; step++)
        {
            run.Log("loss", step, step);
        }

        await Task.Delay(300);
        await using var restarted = await Core.RetryAsync(() => TestServerOnPort(data.Path, grpcPort));
        await run.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await run.EndAsync();

        var (steps, values, _) = await restarted.Client.ReadSeriesAsync(run.Id, "loss");
        Assert.Equal(Enumerable.Range(0, 10_000).Select(i => (long)i), steps);
        Assert.Equal(Enumerable.Range(0, 10_000).Select(i => (double)i), values);
    }

    [Fact]
    public async Task Log_blocks_at_the_pending_bound_while_the_server_is_away_and_loses_nothing()
    {
        using var data = new TempDirectory();
        var server = await TestServer.StartAsync(data.Path);
        var grpcPort = server.Server.GrpcAddress.Port;
        using var client = new MetricStoreClient(new MetricStoreClientOptions
        {
            Address = server.Server.GrpcAddress,
            Metrics = new MetricLoggingOptions
            {
                MaxBatchPoints = 100,
                MaxPendingPoints = 1_000,
                FlushInterval = TimeSpan.FromMilliseconds(10),
                MaxReconnectDelay = TimeSpan.FromMilliseconds(100),
            },
        });
        var run = await client.StartRunAsync(Unique.Name("bound"));
        run.Log("loss", 0, 0.0);
        await run.FlushAsync();
        await server.DisposeAsync();

        var logged = 0;
        var logging = Task.Run(() =>
        {
            for (var step = 1; step <= 3_000; step++)
            {
                run.Log("loss", step, step);
                Volatile.Write(ref logged, step);
            }
        });
        await Task.Delay(500);
        Assert.False(logging.IsCompleted, "Log must block once 1000 points are pending");
        Assert.InRange(Volatile.Read(ref logged), 900, 1_000);

        await using var restarted = await Core.RetryAsync(() => TestServerOnPort(data.Path, grpcPort));
        await logging.WaitAsync(TimeSpan.FromSeconds(30));
        await run.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await run.EndAsync();
        var (steps, _, _) = await restarted.Client.ReadSeriesAsync(run.Id, "loss");
        Assert.Equal(Enumerable.Range(0, 3_001).Select(i => (long)i), steps);
    }

    private static Task<TestServer> TestServerOnPort(string data, int grpcPort) => TestServer.StartAsync(data, grpcPort);

    private static class Core
    {
        public static async Task<T> RetryAsync<T>(Func<Task<T>> start)
        {
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    return await start();
                }
                catch (IOException) when (attempt < 20)
                {
                    await Task.Delay(100); // the port may linger a moment after the old server stops
                }
            }
        }
    }
}
