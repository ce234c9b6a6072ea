namespace MetricStore.Storage.Query;

/// <summary>
/// Bounds the bytes of decoded columns that scans hold of their own, over every read of an engine
/// (<see cref="StorageOptions.ScanMemoryBytes"/>). A scan (a long raw read whose row groups the
/// query cache lacks) decodes each row group into columns of its own, 24 MB for a million points,
/// and it used to take them whatever other scans held: eight dashboards reading a 10M-step series
/// in full while training wrote took the server to 1.6 GiB (docs/benchmarks.md, twelfth session).
/// </summary>
/// <remarks>
/// A scan takes its first set of columns with <see cref="TakeAsync"/>, which waits in line (first
/// come, first served) until the bytes fit, and its second (to decode the next row group while this
/// one is sent) only with <see cref="TryTake"/>, which never waits and never passes anyone waiting.
/// A scan with both gives one back when someone waits (<see cref="Waiting"/>). So a scan waits only
/// while it holds nothing, and every scan that holds columns can finish: no deadlock. A request
/// larger than the whole bound is granted once nothing else is held.
/// </remarks>
internal sealed class ScanMemory(long limitBytes)
{
    private readonly Lock _lock = new();
    private readonly LinkedList<(long Bytes, TaskCompletionSource Grant)> _waiting = new();
    private long _used;

    public long LimitBytes => limitBytes;

    /// <summary>Bytes held by scans now.</summary>
    public long UsedBytes
    {
        get
        {
            lock (_lock)
            {
                return _used;
            }
        }
    }

    /// <summary>The most bytes scans held at once since the engine opened (for tests and logs).</summary>
    public long PeakBytes { get; private set; }

    /// <summary>Scans waiting for their first columns now.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>Takes the bytes when they fit now and nobody waits; false otherwise.</summary>
    public bool TryTake(long bytes)
    {
        lock (_lock)
        {
            if (_waiting.Count > 0 || !Fits(bytes))
            {
                return false;
            }

            Add(bytes);
            return true;
        }
    }

    /// <summary>Takes the bytes, waiting behind the scans that asked before until they fit.</summary>
    public async ValueTask TakeAsync(long bytes, CancellationToken cancellationToken)
    {
        LinkedListNode<(long, TaskCompletionSource)> node;
        lock (_lock)
        {
            if (_waiting.Count == 0 && Fits(bytes))
            {
                Add(bytes);
                return;
            }

            node = _waiting.AddLast((bytes, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)));
        }

        var grant = node.Value.Item2;
        await using (cancellationToken.Register(() => Cancel(node, cancellationToken)))
        {
            await grant.Task;
        }
    }

    /// <summary>Gives back bytes taken, and grants the waiting scans that now fit, in order.</summary>
    public void Give(long bytes)
    {
        lock (_lock)
        {
            _used -= bytes;
            GrantWaiting();
        }
    }

    private void Cancel(LinkedListNode<(long, TaskCompletionSource)> node, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (node.List is null)
            {
                return; // granted already: the scan gives the bytes back when it ends
            }

            _waiting.Remove(node);
            node.Value.Item2.TrySetCanceled(cancellationToken);
            GrantWaiting(); // the one that left may have been first in line
        }
    }

    private void GrantWaiting()
    {
        while (_waiting.First is { } first && Fits(first.Value.Bytes))
        {
            _waiting.RemoveFirst();
            Add(first.Value.Bytes);
            first.Value.Grant.TrySetResult();
        }
    }

    private bool Fits(long bytes) => _used == 0 || _used + bytes <= limitBytes;

    private void Add(long bytes)
    {
        _used += bytes;
        PeakBytes = Math.Max(PeakBytes, _used);
    }
}
