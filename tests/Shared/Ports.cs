using System.Net;
using System.Net.Sockets;

namespace MetricStore.Tests;

internal static class Ports
{
    /// <summary>A loopback port that was free a moment ago: nothing listens there.</summary>
    public static int Unused()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
