using Grpc.Core;
using MetricStore.Protocol.V1;

namespace MetricStore.Client;

/// <summary>
/// Buffers logged points per series and streams them to the server in columnar batches on a
/// background task. Every request keeps its seq until the server acknowledges it durable; after a
/// reconnect the unacknowledged requests are sent again with the same seqs, and the server answers
/// them as duplicates if they had already landed, so nothing is lost or doubled.
/// </summary>
/// <remarks>
/// Memory is bounded by <see cref="MetricLoggingOptions.MaxPendingPoints"/>: points buffered plus
/// points sent but not yet acknowledged. At the bound, <see cref="Log"/> blocks the calling thread
/// until acknowledgements free room (the server or network is slower than the job logs); it never
/// drops a point.
/// </remarks>
internal sealed class MetricSender : IAsyncDisposable
{
    private readonly IngestService.IngestServiceClient _ingest;
    private readonly MetricLoggingOptions _options;
    private readonly string _runId;
    private readonly string _writerId;
    private readonly Lock _gate = new();
    // Keyed by (metric, canonical labels text): a tuple key, so finding a buffer allocates nothing.
    private readonly Dictionary<(string Metric, string Labels), SeriesBuffer> _buffers = [];
    private readonly Queue<(ulong Seq, WriteRequest Request, long Points)> _unacked = new();
    private readonly List<(ulong Seq, TaskCompletionSource Done)> _flushWaiters = [];
    private readonly List<string> _rejections = [];
    private readonly SemaphoreSlim _work = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _bufferedPoints;
    private long _unackedPoints;
    private ulong _lastSeq;
    private ulong _durableSeq;
    private ulong _sentThrough;
    private bool _closing;
    private Exception? _fault;

    public MetricSender(IngestService.IngestServiceClient ingest, string runId, MetricLoggingOptions options)
    {
        _ingest = ingest;
        _runId = runId;
        _options = options;
        _writerId = $"{runId[..8]}-{Guid.NewGuid():N}";
        _loop = Task.Run(RunAsync);
    }

    public string WriterId => _writerId;

    /// <summary>Highest seq the server has acknowledged durable.</summary>
    public ulong DurableSeq
    {
        get
        {
            lock (_gate)
            {
                return _durableSeq;
            }
        }
    }

    /// <summary>Messages of batches the server refused (at most the last 100).</summary>
    public IReadOnlyList<string> Rejections
    {
        get
        {
            lock (_gate)
            {
                return [.. _rejections];
            }
        }
    }

    /// <summary>Times the stream was re-opened after a failure.</summary>
    public int Reconnects { get; private set; }

    /// <summary>Canonical text of a label set ("" for none): sorted "k=v" pairs. Callers compute it once per label set.</summary>
    public static string LabelsText(IReadOnlyDictionary<string, string>? labels) =>
        labels is null || labels.Count == 0
            ? ""
            : string.Join('\u001f', labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => l.Key + "=" + l.Value));

    /// <summary>Buffers one point. <paramref name="labelsText"/> is <see cref="LabelsText"/> of <paramref name="labels"/>.</summary>
    public void Log(string metric, string labelsText, IReadOnlyDictionary<string, string>? labels, long step, double value, bool float32)
    {
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var key = (metric, labelsText);
        // Backpressure: wait for acknowledgements rather than drop points or grow without bound.
        while (Interlocked.Read(ref _bufferedPoints) + Interlocked.Read(ref _unackedPoints) >= _options.MaxPendingPoints && _fault is null && !_closing)
        {
            _work.Release();
            Thread.Sleep(1);
        }

        var wake = false;
        lock (_gate)
        {
            ThrowIfUnusable();
            if (!_buffers.TryGetValue(key, out var buffer))
            {
                var wire = new SeriesKey { RunId = _runId, Metric = metric };
                if (labels is not null)
                {
                    foreach (var (k, v) in labels)
                    {
                        wire.Labels[k] = v;
                    }
                }

                buffer = new SeriesBuffer(wire);
                _buffers[key] = buffer;
            }

            buffer.Add(step, value, timestamp, float32);
            _bufferedPoints++;
            wake = buffer.Count >= _options.MaxBatchPoints;
        }

        if (wake)
        {
            _work.Release();
        }
    }

    /// <summary>Sends what is buffered and waits until the server has acknowledged all of it durable.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        Task done;
        lock (_gate)
        {
            ThrowIfFaulted();
            var target = CutLocked();
            if (target <= _durableSeq)
            {
                return;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _flushWaiters.Add((target, waiter));
            done = waiter.Task;
        }

        _work.Release();
        await done.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        Exception? flushError = null;
        try
        {
            await FlushAsync(CancellationToken.None);
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException)
        {
            flushError = e;
        }

        lock (_gate)
        {
            _closing = true;
        }

        _work.Release();

        // Give the stream a moment to close cleanly (everything is acknowledged by now), then cut it.
        if (await Task.WhenAny(_loop, Task.Delay(TimeSpan.FromSeconds(5))) != _loop)
        {
            await _stop.CancelAsync();
        }

        await _loop;

        _stop.Dispose();
        if (flushError is not null)
        {
            throw new InvalidOperationException($"metrics of run {_runId} could not all be made durable: {flushError.Message}", flushError);
        }
    }

    private void ThrowIfUnusable()
    {
        ThrowIfFaulted();
        if (_closing)
        {
            throw new InvalidOperationException($"run {_runId} is closed; metrics can no longer be logged to it");
        }
    }

    private void ThrowIfFaulted()
    {
        if (_fault is not null)
        {
            throw new InvalidOperationException($"metric logging for run {_runId} stopped: {_fault.Message}", _fault);
        }
    }

    /// <summary>Turns every non-empty buffer into one request (next seq). Returns the last seq. Caller holds the gate.</summary>
    private ulong CutLocked()
    {
        if (_bufferedPoints == 0)
        {
            return _lastSeq;
        }

        var request = new WriteRequest { WriterId = _writerId, Seq = ++_lastSeq };
        foreach (var buffer in _buffers.Values)
        {
            if (buffer.Count > 0)
            {
                request.Batches.Add(buffer.Drain());
            }
        }

        _unacked.Enqueue((request.Seq, request, _bufferedPoints));
        _unackedPoints += _bufferedPoints;
        _bufferedPoints = 0;
        return request.Seq;
    }

    private async Task RunAsync()
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                await StreamAsync();
                return;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException e) when (IsTransient(e.StatusCode) && !_stop.IsCancellationRequested)
            {
                Reconnects++;
                try
                {
                    await Task.Delay(backoff, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxReconnectDelay.Ticks));
            }
            catch (Exception e)
            {
                Fail(e);
                return;
            }
        }
    }

    /// <summary>One stream's life: re-send the unacknowledged, then send new requests as they are cut.</summary>
    private async Task StreamAsync()
    {
        using var call = _ingest.Write(cancellationToken: _stop.Token);
        var acks = ReadAcksAsync(call.ResponseStream);
        lock (_gate)
        {
            _sentThrough = _durableSeq;
        }

        while (true)
        {
            WriteRequest? next;
            bool closing;
            lock (_gate)
            {
                if (_bufferedPoints > 0 && ShouldCut())
                {
                    CutLocked();
                }

                next = NextUnsentLocked();
                closing = _closing && _unacked.Count == 0 && _bufferedPoints == 0;
            }

            if (next is not null)
            {
                await call.RequestStream.WriteAsync(next, _stop.Token);
                lock (_gate)
                {
                    _sentThrough = Math.Max(_sentThrough, next.Seq);
                }

                continue;
            }

            if (closing)
            {
                await call.RequestStream.CompleteAsync();
                await acks;
                return;
            }

            if (acks.IsCompleted)
            {
                await acks; // surfaces the stream's error
                throw new RpcException(new Status(StatusCode.Unavailable, "the server closed the ingest stream"));
            }

            var wait = _work.WaitAsync(_options.FlushInterval, _stop.Token);
            await Task.WhenAny(wait, acks);
            if (!acks.IsCompleted || wait.IsCompleted)
            {
                await wait;
            }

            lock (_gate)
            {
                CutLocked();
            }
        }
    }

    private bool ShouldCut()
    {
        foreach (var buffer in _buffers.Values)
        {
            if (buffer.Count >= _options.MaxBatchPoints)
            {
                return true;
            }
        }

        return false;
    }

    private WriteRequest? NextUnsentLocked()
    {
        foreach (var (seq, request, _) in _unacked)
        {
            if (seq > _sentThrough)
            {
                return request;
            }
        }

        return null;
    }

    private async Task ReadAcksAsync(IAsyncStreamReader<WriteAck> acks)
    {
        while (await acks.MoveNext(_stop.Token))
        {
            var ack = acks.Current;
            lock (_gate)
            {
                if (ack.DurableSeq > _durableSeq)
                {
                    _durableSeq = ack.DurableSeq;
                }

                while (_unacked.Count > 0 && _unacked.Peek().Seq <= _durableSeq)
                {
                    _unackedPoints -= _unacked.Dequeue().Points;
                }

                foreach (var rejection in ack.Rejected)
                {
                    if (_rejections.Count == 100)
                    {
                        _rejections.RemoveAt(0);
                    }

                    _rejections.Add($"seq {rejection.Seq} batch {rejection.BatchIndex}: {rejection.Message}");
                }

                for (var i = _flushWaiters.Count - 1; i >= 0; i--)
                {
                    if (_flushWaiters[i].Seq <= _durableSeq)
                    {
                        _flushWaiters[i].Done.TrySetResult();
                        _flushWaiters.RemoveAt(i);
                    }
                }
            }
        }
    }

    private void Fail(Exception e)
    {
        lock (_gate)
        {
            _fault = e;
            foreach (var (_, done) in _flushWaiters)
            {
                done.TrySetException(new InvalidOperationException($"metric logging for run {_runId} stopped: {e.Message}", e));
            }

            _flushWaiters.Clear();
        }
    }

    private static bool IsTransient(StatusCode code) =>
        code is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown or StatusCode.Cancelled
            or StatusCode.DeadlineExceeded or StatusCode.Aborted or StatusCode.ResourceExhausted;

    /// <summary>The points of one series waiting to be sent, in columns.</summary>
    private sealed class SeriesBuffer(SeriesKey key)
    {
        private long[] _steps = new long[64];
        private double[] _values = new double[64];
        private long[] _timestamps = new long[64];
        private bool _allFloat32 = true;

        public int Count { get; private set; }

        public void Add(long step, double value, long timestamp, bool float32)
        {
            if (Count == _steps.Length)
            {
                Array.Resize(ref _steps, Count * 2);
                Array.Resize(ref _values, Count * 2);
                Array.Resize(ref _timestamps, Count * 2);
            }

            _steps[Count] = step;
            _values[Count] = value;
            _timestamps[Count] = timestamp;
            _allFloat32 &= float32;
            Count++;
        }

        public SeriesBatch Drain()
        {
            var batch = new SeriesBatch { Key = key };
            batch.Steps.AddRange(new ArraySegment<long>(_steps, 0, Count));
            if (_allFloat32)
            {
                var floats = new float[Count];
                for (var i = 0; i < Count; i++)
                {
                    floats[i] = (float)_values[i];
                }

                batch.ValuesF32.AddRange(floats);
            }
            else
            {
                batch.Values.AddRange(new ArraySegment<double>(_values, 0, Count));
            }

            // One shared timestamp when every point carries the same millisecond.
            var shared = true;
            for (var i = 1; i < Count && shared; i++)
            {
                shared = _timestamps[i] == _timestamps[0];
            }

            batch.TimestampsMs.AddRange(new ArraySegment<long>(_timestamps, 0, shared ? 1 : Count));
            Count = 0;
            _allFloat32 = true;
            return batch;
        }
    }
}

/// <summary>How the client batches and streams metric points.</summary>
public sealed record MetricLoggingOptions
{
    /// <summary>A series' buffer is sent once it holds this many points.</summary>
    public int MaxBatchPoints { get; init; } = 10_000;

    /// <summary>Buffered points are sent at least this often.</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Points buffered plus sent-but-unacknowledged; at the bound Log blocks until acks free room.</summary>
    public long MaxPendingPoints { get; init; } = 4_000_000;

    /// <summary>Longest wait between reconnect attempts (the wait doubles from 100 ms).</summary>
    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(5);
}
