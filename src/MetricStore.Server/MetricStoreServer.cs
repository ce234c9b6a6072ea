using System.Net;
using MetricStore.Core;
using MetricStore.Server.Auth;
using MetricStore.Server.Grpc;
using MetricStore.Server.Http;
using MetricStore.Storage;
using MetricStore.Tracking;
using MetricStore.Tracking.Artifacts;
using MetricStore.Tracking.Registry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MetricStore.Server;

/// <summary>
/// A running MetricStore server: gRPC on one port (HTTP/2 cleartext), HTTP/JSON and /healthz on
/// another. Start it with <see cref="StartAsync"/>; it stops on <see cref="StopAsync"/>, on
/// dispose, or (when started from the CLI) on Ctrl+C / SIGTERM.
/// </summary>
public sealed class MetricStoreServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TrackingStore _tracking;
    private int _stopped;

    private MetricStoreServer(WebApplication app, TrackingStore tracking, MetricStoreServerOptions options, Uri grpc, Uri http)
    {
        _app = app;
        _tracking = tracking;
        Options = options;
        GrpcAddress = grpc;
        HttpAddress = http;
    }

    public MetricStoreServerOptions Options { get; }

    /// <summary>The bound gRPC address, with the real port when 0 was asked.</summary>
    public Uri GrpcAddress { get; }

    /// <summary>The bound HTTP/JSON address, with the real port when 0 was asked.</summary>
    public Uri HttpAddress { get; }

    public string DataDirectory => Path.GetFullPath(Options.DataDirectory);

    /// <summary>The metrics engine, for tests and the bench harness (stats, recovery report).</summary>
    public StorageEngine Storage => _app.Services.GetRequiredService<StorageEngine>();

    /// <summary>The heap governor, when <see cref="MetricStoreServerOptions.HeapSlackMiB"/> or <see cref="MetricStoreServerOptions.HeapCompactFreeMiB"/> turned it on.</summary>
    internal HeapGovernor? HeapGovernor => _app.Services.GetService<HeapGovernor>();

    /// <summary>The bound on decoded write requests in memory (<see cref="MetricStoreServerOptions.IngestBufferMiB"/>).</summary>
    internal IngestAdmission IngestAdmission => _app.Services.GetRequiredService<IngestAdmission>();

    /// <summary>Copies changed metric summaries into the tracking store now (run search sees them); the server also does it every second.</summary>
    public Task<int> SyncMetricSummariesAsync() => _app.Services.GetRequiredService<MetricSummarySync>().SyncOnceAsync();

    /// <summary>Completes when the host begins to stop (Ctrl+C, SIGTERM or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>
    /// Opens the stores in the data directory and starts listening.
    /// </summary>
    /// <param name="options">Validated here; an unusable option is InvalidArgument naming it.</param>
    /// <param name="configureLogging">Adds or filters log providers; the default is the console at Information.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<MetricStoreServer> StartAsync(
        MetricStoreServerOptions options, Action<ILoggingBuilder>? configureLogging = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        // Before anything opens a file: a read-only or full data directory fails here, unchanged.
        DataDirectoryCheck.EnsureWritable(options.DataDirectory);
        var tracking = TrackingStore.Open(new TrackingStoreOptions { DataDirectory = options.DataDirectory });
        WebApplication? app = null;
        try
        {
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
            configureLogging?.Invoke(builder.Logging);
            builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));

            ListenOptions? grpcListen = null;
            ListenOptions? httpListen = null;
            var address = options.BindAddress();
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.Listen(address, options.GrpcPort, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    grpcListen = listen;
                });
                kestrel.Listen(address, options.HttpPort, listen =>
                {
                    // HTTP/2 without TLS needs prior knowledge, which browsers and curl do not use: HTTP/1.1 here.
                    listen.Protocols = HttpProtocols.Http1;
                    httpListen = listen;
                });
                // gRPC messages are bounded by the services (16 MiB for ingest); Kestrel's own request body
                // limit does not apply to HTTP/2 streams that gRPC reads incrementally.
                kestrel.Limits.MaxRequestBodySize = 64L * 1024 * 1024;

                // HTTP/2 flow control: a stream may have 4 MiB in flight (Kestrel's default is 768 KiB),
                // enough for the bandwidth-delay product of a loopback or LAN transfer; artifact uploads
                // gained 10-15% (bench artifacts). What a stream buffers stays bounded by the window.
                kestrel.Limits.Http2.InitialConnectionWindowSize = 8 << 20;
                kestrel.Limits.Http2.InitialStreamWindowSize = 4 << 20;
            });

            builder.Services.AddSingleton(tracking);
            builder.Services.AddSingleton(services =>
            {
                var store = ArtifactStore.Open(tracking, options.MaxArtifactBytes ?? ArtifactStore.DefaultMaxArtifactBytes);
                if (store.LastSweep is { PartialUploads: > 0 } or { OrphanBlobs: > 0 })
                {
                    services.GetRequiredService<ILoggerFactory>().CreateLogger("MetricStore.Artifacts").LogWarning(
                        "Removed {Partial} interrupted uploads ({PartialBytes} bytes) and {Orphans} unrecorded blobs ({OrphanBytes} bytes) left by an earlier stop",
                        store.LastSweep.PartialUploads,
                        store.LastSweep.PartialBytes,
                        store.LastSweep.OrphanBlobs,
                        store.LastSweep.OrphanBytes);
                }

                return store;
            });
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddSingleton(new Authentication(tracking, options.Auth));
            builder.Services.AddHostedService<WebhookDispatcher>();
            builder.Services.AddSingleton<RunDirectory>();
            builder.Services.AddSingleton(new ReadStallPolicy(options.ReadStallTimeout));
            builder.Services.AddSingleton(new IngestAdmission(options.IngestBufferMiB * 1024L * 1024));
            builder.Services.AddSingleton<MetricSummarySync>();
            if (options.HeapSlackMiB is > 0 || options.HeapCompactFreeMiB is > 0)
            {
                builder.Services.AddSingleton(services => new HeapGovernor(
                    (options.HeapSlackMiB ?? 0) * 1024L * 1024, (options.HeapCompactFreeMiB ?? 0) * 1024L * 1024, services.GetRequiredService<ILogger<HeapGovernor>>()));
                builder.Services.AddHostedService(services => services.GetRequiredService<HeapGovernor>());
            }

            builder.Services.AddHostedService(services => services.GetRequiredService<MetricSummarySync>());
            builder.Services.AddSingleton(services =>
            {
                var log = services.GetRequiredService<ILoggerFactory>().CreateLogger("MetricStore.Storage");
                return StorageEngine.Open(new StorageOptions
                {
                    DataDirectory = options.DataDirectory,
                    Durability = options.Durability,
                    SealThresholdPoints = options.SealThresholdPoints ?? StorageOptions.DefaultSealThresholdPoints,
                    QueryCacheBytes = options.QueryCacheMiB is { } mib ? mib * 1024L * 1024 : StorageOptions.DefaultQueryCacheBytes,
                    MemoryBudgetBytes = options.MemoryBudgetMiB is { } budget ? budget * 1024L * 1024 : StorageOptions.DefaultMemoryBudgetBytes,
                    ScanMemoryBytes = options.ScanMemoryMiB is { } scans ? scans * 1024L * 1024 : StorageOptions.DefaultScanMemoryBytes,
                    Log = (level, message) => log.Log(
                        level switch { StorageLogLevel.Error => LogLevel.Error, StorageLogLevel.Warning => LogLevel.Warning, _ => LogLevel.Information },
                        message),
                });
            });
            builder.Services
                .AddGrpc(grpc =>
                {
                    grpc.Interceptors.Add<ErrorInterceptor>();
                    grpc.MaxReceiveMessageSize = 16 * 1024 * 1024;
                    grpc.EnableDetailedErrors = false;
                })
                .AddJsonTranscoding(json =>
                {
                    // Numbers, not strings, for int64: ids, steps and epoch milliseconds all fit a JS double.
                    json.JsonSettings.WriteInt64sAsStrings = false;
                });
            builder.Services.AddGrpcHealthChecks().AddCheck<TrackingHealthCheck>("tracking");
            builder.Services.AddHealthChecks();

            app = builder.Build();

            // Open the engine (WAL replay) now, so a damaged WAL fails the start, not the first write.
            _ = app.Services.GetRequiredService<StorageEngine>();
            _ = app.Services.GetRequiredService<ArtifactStore>();
            var authentication = app.Services.GetRequiredService<Authentication>();
            var startLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("MetricStore.Server");
            if (authentication.Enabled)
            {
                startLog.LogInformation("Authentication is on: every call needs 'authorization: Bearer TOKEN' of a user ({Users} users)", tracking.ListUsers().Count);
            }
            else
            {
                startLog.LogInformation("Authentication is off: every call acts as the local admin 'local'; start with --auth to require user tokens");
            }

            app.UseRouting();
            app.Use(authentication.InvokeAsync);
            app.MapGrpcService<TrackingGrpcService>();
            app.MapGrpcService<RegistryGrpcService>();
            if (options.DiscardIngest)
            {
                app.MapGrpcService<DiscardIngestService>();
            }
            else
            {
                app.MapGrpcService<IngestGrpcService>();
            }

            app.MapGrpcService<QueryGrpcService>();
            app.MapGet("/v1/query/points", PointsEndpoint.HandleAsync).WithMetadata(new RequiredRole(Role.Reader));
            app.MapGrpcService<ArtifactGrpcService>();
            app.MapPut("/v1/runs/{runId}/artifacts/{**path}", ArtifactsEndpoint.PutAsync).WithMetadata(new RequiredRole(Role.Writer));
            app.MapGet("/v1/runs/{runId}/artifacts/{**path}", ArtifactsEndpoint.GetAsync).WithMetadata(new RequiredRole(Role.Reader));
            app.MapGrpcHealthChecksService();
            app.MapHealthChecks("/healthz").WithMetadata(new Anonymous());

            await app.StartAsync(cancellationToken);

            var grpcUri = ToUri(grpcListen!.IPEndPoint!);
            var httpUri = ToUri(httpListen!.IPEndPoint!);
            return new MetricStoreServer(app, tracking, options, grpcUri, httpUri);
        }
        catch
        {
            // Stops the WAL writer and closes files of whatever had started.
            if (app is not null)
            {
                await app.DisposeAsync();
            }

            tracking.Dispose();
            throw;
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        await _app.StopAsync(cancellationToken);
        await _app.DisposeAsync();
        _tracking.Dispose();
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private static Uri ToUri(IPEndPoint endpoint)
    {
        var host = endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any)
            ? "127.0.0.1"
            : endpoint.Address.ToString();
        if (endpoint.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && !host.StartsWith('['))
        {
            host = "[" + host + "]";
        }

        return new Uri($"http://{host}:{endpoint.Port}");
    }
}
