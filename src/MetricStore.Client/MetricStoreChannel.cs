using Grpc.Net.Client;

namespace MetricStore.Client;

/// <summary>
/// The gRPC channel every MetricStore .NET caller uses (the client, the CLI, the bench harness).
/// </summary>
/// <remarks>
/// It opens HTTP/2 streams with an 8 MiB receive window instead of SocketsHttpHandler's 64 KiB. That
/// is a workaround for a Kestrel bug (dotnet/aspnetcore#53736, open, seen here on ASP.NET Core
/// 10.0.12): when a response spans several stream windows, Kestrel can lose the response of a later
/// stream on the same connection for good. A server dump of one such stall showed the stream's
/// output producer marked scheduled, its whole response still unsent, and the connection's frame
/// writer idle with an empty queue. A 1000-bucket ReadDownsampled answer is about 67 KB, just over
/// 64 KiB, so dashboards hit it (about one call in tens of thousands; 'bench query' runs now and then
/// ended in DEADLINE_EXCEEDED). With the larger window, answers up to about 1 MiB need no stream
/// WINDOW_UPDATE at all. tools/query-stall/repro.cs measures both settings.
/// </remarks>
public static class MetricStoreChannel
{
    /// <summary>The initial HTTP/2 stream receive window (SocketsHttpHandler allows up to 16 MiB).</summary>
    public const int StreamWindowBytes = 8 * 1024 * 1024;

    /// <summary>A channel to <paramref name="address"/> with the given message limits (bytes).</summary>
    public static GrpcChannel Create(Uri address, int maxReceiveMessageBytes = 16 * 1024 * 1024, int maxSendMessageBytes = 16 * 1024 * 1024)
    {
        ArgumentNullException.ThrowIfNull(address);
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = maxReceiveMessageBytes,
            MaxSendMessageSize = maxSendMessageBytes,
            HttpHandler = new SocketsHttpHandler
            {
                InitialHttp2StreamWindowSize = StreamWindowBytes,
                EnableMultipleHttp2Connections = true, // what GrpcChannel sets on the handler it makes itself
            },
            DisposeHttpClient = true,
        });
    }
}
