using System.Collections.Concurrent;
using MetricStore.Client;
using MetricStore.Server;
using Microsoft.Extensions.Logging;

namespace MetricStore.Tests;

/// <summary>
/// A real MetricStore server on loopback port 0 over a temp data directory, with the real client
/// and an HttpClient for the HTTP/JSON API. Disposing it fails when the server logged an error
/// that no test declared as expected (as grpc-dotnet's functional tests do).
/// </summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly TempDirectory? _ownedDirectory;
    private readonly LogSink _logs;

    private TestServer(MetricStoreServer server, TempDirectory? ownedDirectory, LogSink logs)
    {
        Server = server;
        _ownedDirectory = ownedDirectory;
        _logs = logs;
        Client = new MetricStoreClient(new MetricStoreClientOptions { Address = server.GrpcAddress });
        Http = new HttpClient { BaseAddress = server.HttpAddress };
    }

    public MetricStoreServer Server { get; }

    public MetricStoreClient Client { get; }

    public HttpClient Http { get; }

    public string DataDirectory => Server.DataDirectory;

    /// <summary>Errors logged so far, as "category: message".</summary>
    public IReadOnlyCollection<string> Errors => _logs.Errors;

    /// <summary>Warnings the server logged (a clean start logs none).</summary>
    public IReadOnlyCollection<string> Warnings => _logs.Warnings;

    public static async Task<TestServer> StartAsync(string? dataDirectory = null, int grpcPort = 0, Func<MetricStoreServerOptions, MetricStoreServerOptions>? configure = null)
    {
        var owned = dataDirectory is null ? new TempDirectory() : null;
        var logs = new LogSink();
        var options = new MetricStoreServerOptions
        {
            DataDirectory = dataDirectory ?? owned!.Path,
            GrpcPort = grpcPort,
            HttpPort = 0,
        };
        options = configure?.Invoke(options) ?? options;
        var server = await MetricStoreServer.StartAsync(options, logging =>
        {
            logging.ClearProviders();
            logging.AddProvider(logs);
            logging.SetMinimumLevel(LogLevel.Warning);
        });
        return new TestServer(server, owned, logs);
    }

    /// <summary>Fails when the server logged an error since the last check (call after each test of a shared server).</summary>
    public void AssertNoUnexpectedErrors()
    {
        var errors = new List<string>();
        while (_logs.Errors.TryDequeue(out var error))
        {
            errors.Add(error);
        }

        if (errors.Count > 0)
        {
            throw new InvalidOperationException("the server logged unexpected errors:\n" + string.Join('\n', errors));
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Client.Dispose();
        await Server.DisposeAsync();
        _ownedDirectory?.Dispose();
        if (!_logs.Errors.IsEmpty)
        {
            throw new InvalidOperationException("the server logged unexpected errors:\n" + string.Join('\n', _logs.Errors));
        }
    }

    private sealed class LogSink : ILoggerProvider
    {
        public ConcurrentQueue<string> Errors { get; } = new();

        public ConcurrentQueue<string> Warnings { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(LogSink sink, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (logLevel >= LogLevel.Error)
                {
                    sink.Errors.Enqueue($"{category}: {formatter(state, exception)} {exception}");
                }
                else
                {
                    sink.Warnings.Enqueue($"{category}: {formatter(state, exception)}");
                }
            }
        }
    }
}
