using System.Runtime.InteropServices;

namespace MetricStore.Storage.Ingest;

/// <summary>
/// A bounded, lock-free multi-producer single-consumer ring (Vyukov's bounded queue: one sequence
/// number per cell, one CAS per enqueue, none per dequeue). Producers that find it full wait
/// (<see cref="EnqueueAsync"/>), which is how backpressure reaches gRPC flow control; nothing is
/// ever dropped and memory never grows past the capacity.
/// </summary>
/// <remarks>
/// Waiting uses two <see cref="SemaphoreSlim"/> signals only on the slow path (full or empty);
/// the fast path is the CAS alone. A signal may be spurious, so both sides re-check in a loop.
/// </remarks>
internal sealed class BoundedMpscQueue<T>
{
    private readonly Cell[] _cells;
    private readonly int _mask;
    private readonly SemaphoreSlim _notEmpty = new(0);
    private readonly SemaphoreSlim _notFull = new(0);
    private PaddedLong _enqueuePosition;
    private PaddedLong _dequeuePosition;
    private int _waitingProducers;
    private int _consumerWaiting;

    public BoundedMpscQueue(int capacity)
    {
        if (capacity < 2 || (capacity & (capacity - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "capacity must be a power of two, at least 2");
        }

        _cells = new Cell[capacity];
        _mask = capacity - 1;
        for (var i = 0; i < capacity; i++)
        {
            _cells[i].Sequence = i;
        }
    }

    public int Capacity => _cells.Length;

    /// <summary>Approximate number of items queued (exact when no operation is in flight).</summary>
    public int Count => (int)Math.Max(0, Volatile.Read(ref _enqueuePosition.Value) - Volatile.Read(ref _dequeuePosition.Value));

    public bool TryEnqueue(T item)
    {
        var position = Volatile.Read(ref _enqueuePosition.Value);
        while (true)
        {
            ref var cell = ref _cells[position & _mask];
            var sequence = Volatile.Read(ref cell.Sequence);
            var difference = sequence - position;
            if (difference == 0)
            {
                if (Interlocked.CompareExchange(ref _enqueuePosition.Value, position + 1, position) == position)
                {
                    cell.Item = item;
                    Volatile.Write(ref cell.Sequence, position + 1);
                    if (Volatile.Read(ref _consumerWaiting) != 0)
                    {
                        _notEmpty.Release();
                    }

                    return true;
                }

                position = Volatile.Read(ref _enqueuePosition.Value);
            }
            else if (difference < 0)
            {
                return false; // full
            }
            else
            {
                position = Volatile.Read(ref _enqueuePosition.Value);
            }
        }
    }

    /// <summary>Enqueues, waiting while the ring is full.</summary>
    public ValueTask EnqueueAsync(T item, CancellationToken cancellationToken)
    {
        return TryEnqueue(item) ? ValueTask.CompletedTask : EnqueueSlowAsync(item, cancellationToken);
    }

    private async ValueTask EnqueueSlowAsync(T item, CancellationToken cancellationToken)
    {
        while (true)
        {
            Interlocked.Increment(ref _waitingProducers);
            try
            {
                if (TryEnqueue(item))
                {
                    return;
                }

                // Bounded wait: a release may race with our increment; re-check periodically.
                await _notFull.WaitAsync(10, cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _waitingProducers);
            }

            if (TryEnqueue(item))
            {
                return;
            }
        }
    }

    /// <summary>Single consumer only.</summary>
    public bool TryDequeue(out T item)
    {
        var position = _dequeuePosition.Value;
        ref var cell = ref _cells[position & _mask];
        var sequence = Volatile.Read(ref cell.Sequence);
        if (sequence - (position + 1) < 0)
        {
            item = default!;
            return false;
        }

        item = cell.Item;
        cell.Item = default!;
        Volatile.Write(ref cell.Sequence, position + _cells.Length);
        Volatile.Write(ref _dequeuePosition.Value, position + 1);
        if (Volatile.Read(ref _waitingProducers) != 0)
        {
            _notFull.Release();
        }

        return true;
    }

    /// <summary>Single consumer only: blocks until an item may be there (or the timeout passes). For a dedicated thread.</summary>
    public void WaitToRead(int timeoutMs)
    {
        // Full fence: pairs with the producers' CAS so one side always sees the other.
        Interlocked.Exchange(ref _consumerWaiting, 1);
        try
        {
            if (Count > 0)
            {
                return;
            }

            _notEmpty.Wait(timeoutMs);
        }
        finally
        {
            Volatile.Write(ref _consumerWaiting, 0);
        }
    }

    private struct Cell
    {
        public long Sequence;
        public T Item;
    }
}

/// <summary>Keeps the producer and consumer positions on separate cache lines.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedLong
{
    [FieldOffset(64)]
    public long Value;
}
