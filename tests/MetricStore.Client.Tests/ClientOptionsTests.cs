using Grpc.Core;

namespace MetricStore.Client.Tests;

public sealed class ClientOptionsTests
{
    [Theory]
    [InlineData("http://127.0.0.1:50051", "http://127.0.0.1:50051/")]
    [InlineData("localhost:6000", "http://localhost:6000/")]
    [InlineData("https://metrics.example:443", "https://metrics.example/")]
    public void Urls_parse_with_http_as_the_default_scheme(string url, string expected) =>
        Assert.Equal(expected, MetricStoreClientOptions.Parse(url).ToString());

    [Theory]
    [InlineData("ftp://host:1")]
    [InlineData("http://")]
    public void Unusable_urls_are_refused_naming_them(string url)
    {
        var e = Assert.Throws<ArgumentException>(() => MetricStoreClientOptions.Parse(url));
        Assert.Contains(url, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_is_not_there_is_unavailable()
    {
        var port = MetricStore.Tests.Ports.Unused();
        using var client = new MetricStoreClient($"http://127.0.0.1:{port}");
        var e = await Assert.ThrowsAsync<RpcException>(() => client.ListExperimentsAsync());
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
    }
}
