using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using MetricStore.Core;
using MetricStore.Protocol.V1;
using MetricStore.Tests;
using Microsoft.Extensions.Logging;

namespace MetricStore.Server.Tests;

public sealed class ServerLifecycleTests
{
    [Fact]
    public async Task A_clean_start_logs_no_warning()
    {
        // gRPC JSON transcoding used to warn at every start that IngestService had no descriptor.
        await using var server = await TestServer.StartAsync();
        using var channel = GrpcChannel.ForAddress(server.Server.GrpcAddress);
        await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest());
        Assert.Empty(server.Warnings);
    }

    [Fact]
    public async Task Grpc_health_check_reports_serving()
    {
        await using var server = await TestServer.StartAsync();
        using var channel = GrpcChannel.ForAddress(server.Server.GrpcAddress);
        var health = new Health.HealthClient(channel);
        var reply = await health.CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }

    [Fact]
    public async Task Data_survives_a_restart_on_the_same_directory()
    {
        using var directory = new TempDirectory();
        string runId;
        await using (var first = await TestServer.StartAsync(directory.Path))
        {
            await first.Client.CreateExperimentAsync("persisted");
            var run = await first.Client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = "persisted" });
            runId = run.RunId;
        }

        await using var second = await TestServer.StartAsync(directory.Path);
        var again = await second.Client.GetRunAsync(runId);
        Assert.Equal("persisted", again.ExperimentName);
        Assert.True(File.Exists(Path.Combine(directory.Path, "meta.db")));
    }

    [Fact]
    public async Task Binds_loopback_by_default_and_reports_real_ports()
    {
        await using var server = await TestServer.StartAsync();
        Assert.Equal("127.0.0.1", server.Server.GrpcAddress.Host);
        Assert.NotEqual(0, server.Server.GrpcAddress.Port);
        Assert.NotEqual(server.Server.GrpcAddress.Port, server.Server.HttpAddress.Port);
    }

    [Fact]
    public async Task Same_port_for_grpc_and_http_is_refused_before_anything_starts()
    {
        using var directory = new TempDirectory();
        var e = await Assert.ThrowsAsync<MetricStoreException>(() => MetricStoreServer.StartAsync(
            new MetricStoreServerOptions { DataDirectory = directory.Path, GrpcPort = 5555, HttpPort = 5555 }));
        Assert.Contains("both 5555", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(directory.Path, "meta.db")));
    }

    [Fact]
    public async Task The_memory_budget_caps_the_query_cache_of_the_engine_it_starts()
    {
        using var directory = new TempDirectory();
        await using var server = await MetricStoreServer.StartAsync(
            new MetricStoreServerOptions { DataDirectory = directory.Path, GrpcPort = 0, HttpPort = 0, MemoryBudgetMiB = 100, QueryCacheMiB = 512 });
        Assert.Equal(100L << 20, server.Storage.QueryCacheCapacity()); // an empty head leaves it the whole budget, under the cache's 512
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public async Task A_memory_budget_that_is_not_positive_is_refused_naming_it(int mib)
    {
        using var directory = new TempDirectory();
        var e = await Assert.ThrowsAsync<MetricStoreException>(() => MetricStoreServer.StartAsync(
            new MetricStoreServerOptions { DataDirectory = directory.Path, GrpcPort = 0, HttpPort = 0, MemoryBudgetMiB = mib }));
        Assert.Contains($"memory budget {mib} MiB", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(directory.Path, "meta.db")));
    }

    [Fact]
    public async Task The_scan_memory_bounds_the_scans_of_the_engine_it_starts()
    {
        using var directory = new TempDirectory();
        await using var server = await MetricStoreServer.StartAsync(
            new MetricStoreServerOptions { DataDirectory = directory.Path, GrpcPort = 0, HttpPort = 0, ScanMemoryMiB = 7 });
        Assert.Equal(7L << 20, server.Storage.ScanMemoryLimit);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-2)]
    public async Task A_scan_memory_that_is_not_positive_is_refused_naming_it(int mib)
    {
        using var directory = new TempDirectory();
        var e = await Assert.ThrowsAsync<MetricStoreException>(() => MetricStoreServer.StartAsync(
            new MetricStoreServerOptions { DataDirectory = directory.Path, GrpcPort = 0, HttpPort = 0, ScanMemoryMiB = mib }));
        Assert.Contains($"scan memory {mib} MiB", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(directory.Path, "meta.db")));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public async Task A_read_stall_timeout_that_is_not_positive_is_refused_naming_it(int seconds)
    {
        using var directory = new TempDirectory();
        var e = await Assert.ThrowsAsync<MetricStoreException>(() => MetricStoreServer.StartAsync(
            new MetricStoreServerOptions { DataDirectory = directory.Path, GrpcPort = 0, HttpPort = 0, ReadStallTimeout = TimeSpan.FromSeconds(seconds) }));
        Assert.Contains($"read stall timeout {seconds} s is not positive (--read-stall-seconds)", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(directory.Path, "meta.db")));
    }

    [Theory]
    [InlineData("not-an-ip")]
    [InlineData("")]
    public async Task Bad_host_is_refused_naming_it(string host)
    {
        var e = await Assert.ThrowsAsync<MetricStoreException>(() => MetricStoreServer.StartAsync(
            new MetricStoreServerOptions { DataDirectory = "unused", Host = host, GrpcPort = 0, HttpPort = 0 }));
        Assert.Contains("host", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_port_in_use_fails_start_with_an_io_error()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var busy = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var directory = new TempDirectory();
        await Assert.ThrowsAnyAsync<IOException>(() => MetricStoreServer.StartAsync(
            new MetricStoreServerOptions { DataDirectory = directory.Path, GrpcPort = busy, HttpPort = 0 },
            logging => logging.SetMinimumLevel(LogLevel.None)));
    }

    [Fact]
    public async Task Calls_after_stop_fail_with_unavailable()
    {
        var server = await TestServer.StartAsync();
        var address = server.Server.GrpcAddress;
        await server.DisposeAsync();
        using var client = new Client.MetricStoreClient(address.ToString());
        var e = await Assert.ThrowsAsync<RpcException>(() => client.ListExperimentsAsync());
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
    }
}
