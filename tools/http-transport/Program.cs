// How fast can 240,004,800 bytes (10M points of step, value and timestamp: the all-column raw
// read of 'bench query') go from Kestrel to HttpClient on this machine, when the server does no
// work but writing a buffer it already has? And how fast does a bare loopback TCP socket pair move
// them? Prints the median of 7 reads of each, after one warm-up read.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

const long Total = 240_004_800;
const int Reads = 7;
var writeSize = args.Length > 0 ? int.Parse(args[0]) : 1 << 20;

var builder = WebApplication.CreateBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseUrls("http://127.0.0.1:0");
var app = builder.Build();
var source = new byte[writeSize];
new Random(1).NextBytes(source);
app.MapGet("/stream", async (HttpContext http) =>
{
    http.Response.ContentType = "application/vnd.apache.arrow.stream";
    for (long sent = 0; sent < Total; sent += writeSize)
    {
        await http.Response.Body.WriteAsync(source.AsMemory(0, (int)Math.Min(writeSize, Total - sent)));
    }
});
app.MapGet("/pipe", async (HttpContext http) =>
{
    http.Response.ContentType = "application/vnd.apache.arrow.stream";
    var writer = http.Response.BodyWriter;
    for (long sent = 0; sent < Total; sent += writeSize)
    {
        await writer.WriteAsync(source.AsMemory(0, (int)Math.Min(writeSize, Total - sent)));
    }
});
await app.StartAsync();
var url = app.Urls.First();
using var client = new HttpClient();
var sink = new byte[1 << 20];

foreach (var path in new[] { "/stream", "/pipe" })
{
    Report($"Kestrel HTTP/1.1 {path,-7} -> HttpClient", await MeasureAsync(async () =>
    {
        using var response = await client.GetAsync(url + path, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        return await DrainAsync(body);
    }));
}

Report("loopback TCP socket pair", await MeasureAsync(async () =>
{
    using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    listener.Listen(1);
    using var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    await sender.ConnectAsync(listener.LocalEndPoint!);
    using var receiver = await listener.AcceptAsync();
    var send = Task.Run(async () =>
    {
        for (long sent = 0; sent < Total; sent += writeSize)
        {
            await sender.SendAsync(source.AsMemory(0, (int)Math.Min(writeSize, Total - sent)));
        }

        sender.Shutdown(SocketShutdown.Send);
    });
    await using var stream = new NetworkStream(receiver);
    var received = await DrainAsync(stream);
    await send;
    return received;
}));

await app.StopAsync();

async Task<long> DrainAsync(Stream stream)
{
    long received = 0;
    int n;
    while ((n = await stream.ReadAsync(sink)) > 0)
    {
        received += n;
    }

    return received;
}

async Task<double[]> MeasureAsync(Func<Task<long>> read)
{
    var times = new double[Reads + 1];
    for (var i = 0; i <= Reads; i++)
    {
        var watch = Stopwatch.StartNew();
        var received = await read();
        times[i] = watch.Elapsed.TotalMilliseconds;
        if (received != Total)
        {
            throw new InvalidOperationException($"received {received} bytes, not {Total}");
        }
    }

    return times[1..];
}

static void Report(string what, double[] times)
{
    var sorted = times.Order().ToArray();
    var median = sorted[sorted.Length / 2];
    Console.WriteLine($"{what}: median {median:F0} ms ({Total / (median / 1000) / 1e9:F2} GB/s, {10_000_000 / (median / 1000) / 1e6:F1}M points/s at 24 B), range {sorted[0]:F0}-{sorted[^1]:F0} ms");
}
