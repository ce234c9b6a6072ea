using MetricStore.Core;

namespace MetricStore.Server.Grpc;

/// <summary>
/// Bounds the memory of decoded write requests over every ingest stream at once: a stream takes
/// its request's bytes before handing it to the engine and gives them back when the write ends
/// (durable or refused). A stream that finds the budget spent waits before it reads its next
/// message, so HTTP/2 flow control slows its sender; nothing is dropped.
/// </summary>
/// <remarks>
/// The engine's ring bounds requests by count and each stream bounds the requests it keeps in
/// flight (<see cref="IngestGrpcService.MaxInFlight"/>), but neither by size: 64 decoded requests
/// of 5,000 short series each hold about 200 MB on one stream, and the number of streams has no
/// bound. Waiters are served in arrival order, so a large request is not starved by small ones; a
/// request larger than the whole budget waits until nothing else is admitted, then goes alone.
/// What one stream holds beyond the budget is the one message it has read and not yet admitted
/// (at most the gRPC message limit, 16 MiB on the wire).
/// </remarks>
internal sealed class IngestAdmission
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _waiters = new();
    private long _admitted;

    public IngestAdmission(long capacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityBytes, 1);
        CapacityBytes = capacityBytes;
    }

    public long CapacityBytes { get; }

    /// <summary>Bytes of requests admitted and not yet released.</summary>
    public long AdmittedBytes
    {
        get
        {
            lock (_lock)
            {
                return _admitted;
            }
        }
    }

    /// <summary>Requests that had to wait for room since the server started (for tests and logs).</summary>
    public long Waits => Interlocked.Read(ref _waits);

    private long _waits;

    /// <summary>Streams waiting for room (for tests).</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiters.Count;
            }
        }
    }

    /// <summary>
    /// What a decoded batch holds: its column arrays as rented (not only their counts) and, per
    /// series, its key and objects.
    /// </summary>
    public static long MemoryOf(WriteBatch batch)
    {
        long bytes = PerRequestBytes;
        foreach (var series in batch.Series)
        {
            bytes += PerSeriesBytes + ((long)series.Steps.Length * sizeof(long)) + ((long)series.Values.Length * sizeof(double)) + ((long)series.Timestamps.Length * sizeof(long));
        }

        return bytes;
    }

    /// <summary>A decoded request's own objects (the request, its batch list, the write batch), rounded up.</summary>
    public const int PerRequestBytes = 256;

    /// <summary>A series' objects and key strings in a decoded request, rounded up (measured with a heap dump: about 1 KB with three 16-element columns).</summary>
    public const int PerSeriesBytes = 512;

    /// <summary>Takes <paramref name="bytes"/> of the budget (all of it when larger), waiting for room; returns what was taken, to give back to <see cref="Release"/>.</summary>
    public async ValueTask<long> AdmitAsync(long bytes, CancellationToken cancellationToken)
    {
        var take = Math.Clamp(bytes, 1, CapacityBytes);
        Waiter waiter;
        lock (_lock)
        {
            if (_waiters.Count == 0 && _admitted + take <= CapacityBytes)
            {
                _admitted += take;
                return take;
            }

            _waits++;
            waiter = new Waiter(take);
            waiter.Node = _waiters.AddLast(waiter);
        }

        using (cancellationToken.Register(static state =>
        {
            var (self, w) = ((IngestAdmission, Waiter))state!;
            self.Cancel(w);
        }, (this, waiter)))
        {
            await waiter.Granted.Task;
        }

        return take;
    }

    public void Release(long taken)
    {
        List<Waiter>? granted = null;
        lock (_lock)
        {
            _admitted -= taken;
            while (_waiters.First is { } first && _admitted + first.Value.Bytes <= CapacityBytes)
            {
                _admitted += first.Value.Bytes;
                _waiters.RemoveFirst();
                first.Value.Node = null;
                (granted ??= []).Add(first.Value);
            }
        }

        foreach (var waiter in granted ?? [])
        {
            waiter.Granted.TrySetResult();
        }
    }

    private void Cancel(Waiter waiter)
    {
        lock (_lock)
        {
            if (waiter.Node is null)
            {
                return; // granted already: the caller goes on and releases as usual
            }

            _waiters.Remove(waiter.Node);
            waiter.Node = null;
        }

        // Its place may have held back the waiters behind it.
        Release(0);
        waiter.Granted.TrySetCanceled();
    }

    private sealed class Waiter(long bytes)
    {
        public long Bytes { get; } = bytes;

        public LinkedListNode<Waiter>? Node { get; set; }

        public TaskCompletionSource Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
