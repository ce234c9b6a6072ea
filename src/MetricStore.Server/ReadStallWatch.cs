using System.Diagnostics;
using MetricStore.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace MetricStore.Server;

/// <summary>How long a streamed read may wait on its client (<see cref="MetricStoreServerOptions.ReadStallTimeout"/>).</summary>
internal sealed record ReadStallPolicy(TimeSpan Timeout);

/// <summary>
/// Ends a streamed read (gRPC <c>ReadSeries</c>, <c>GET /v1/query/points</c>) whose client takes
/// more than the policy's timeout to accept a slice, by aborting its request. A read holds its
/// snapshot until it ends: the files a compaction replaced meanwhile stay on disk and the head
/// chunks it saw are not reused. Kestrel's minimum response rate does not bound that: it allows a
/// write of n bytes n / 240 seconds, hours for a slice of a million points, and a client that
/// stops reading while HTTP/2 flow control holds the write was seen nowhere else.
/// </summary>
internal sealed class ReadStallWatch : IDisposable
{
    private readonly HttpContext _http;
    private readonly TimeSpan _timeout;
    private readonly ILogger _log;
    private readonly Timer _timer;
    private long _progress = Stopwatch.GetTimestamp(); // when the consumer got the slice it holds
    private int _withClient; // 1 while the consumer holds a slice
    private int _aborted;

    public ReadStallWatch(HttpContext http, ReadStallPolicy policy, ILogger log)
    {
        _http = http;
        _timeout = policy.Timeout;
        _log = log;
        var period = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(50).Ticks, policy.Timeout.Ticks / 4));
        _timer = new Timer(static state => ((ReadStallWatch)state!).Check(), this, period, period);
    }

    /// <summary>
    /// The slices, timing only how long the consumer takes with each (it writes the slice to the
    /// client, then asks for the next). The time the server takes to produce the next slice is not
    /// the client's: a scan waiting its turn for columns (<see cref="StorageOptions.ScanMemoryBytes"/>)
    /// behind a stalled read was ended as stalled too, when the stalled one was.
    /// </summary>
    public async IAsyncEnumerable<PointSlice> Watch(IAsyncEnumerable<PointSlice> points)
    {
        await foreach (var slice in points)
        {
            Volatile.Write(ref _progress, Stopwatch.GetTimestamp());
            Volatile.Write(ref _withClient, 1);
            yield return slice;
            Volatile.Write(ref _withClient, 0);
        }
    }

    private void Check()
    {
        if (Volatile.Read(ref _withClient) == 0 || Stopwatch.GetElapsedTime(Volatile.Read(ref _progress)) <= _timeout || Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        _log.LogWarning("Ended a streamed read of {Path}: its client accepted nothing for {Timeout}; the read's snapshot is released (the client may read on from the last step it received)", _http.Request.Path, _timeout);
        _http.Abort();
    }

    public void Dispose() => _timer.Dispose();
}
