using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>One real server per test class; tests use unique names so they do not see each other.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    private TestServer? _server;

    internal TestServer Server => _server ?? throw new InvalidOperationException("the server has not started");

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
