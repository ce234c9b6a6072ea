namespace MetricStore.Storage.Head;

/// <summary>
/// Reuses full-size head chunks after their points were sealed, so the head stops allocating
/// (and the kernel stops zeroing) some 100 MB of fresh large-object-heap arrays per seal, and the
/// large object heap stops fragmenting.
/// </summary>
/// <remarks>
/// Readers hold views of head chunks without a copy (a streamed Arrow read may hold one for a
/// while), so a sealed chunk may be reused only when no reader can still see it. That is decided
/// by epochs: a reader enters (<see cref="EnterRead"/>) before it takes a series snapshot and exits
/// when it no longer touches the points. Sealed chunks are retired with the current epoch once they
/// are out of every series, and the epoch moves on. A chunk retired at epoch r is free once every
/// reader still inside entered after r: those took their snapshots after the chunk had left the
/// head. A reader that never exits only stops reuse; the retired list is bounded and what falls off
/// it is left to the garbage collector, which is always safe.
/// </remarks>
internal sealed class ChunkRecycler
{
    private readonly Lock _lock = new();
    private readonly Dictionary<long, int> _readers = [];
    private readonly Queue<(long Epoch, List<HeadChunk> Chunks)> _retired = new();
    private readonly Stack<HeadChunk> _free = new();
    private readonly int _maxChunks;
    private long _epoch;
    private int _retiredChunks;

    /// <param name="maxChunks">Most chunks kept, retired and free together (each holds 64k points: 1.5 MiB of columns).</param>
    public ChunkRecycler(int maxChunks)
    {
        _maxChunks = maxChunks;
    }

    /// <summary>Chunks handed out again instead of allocated (for tests and logs).</summary>
    public long Reused { get; private set; }

    /// <summary>Chunks waiting for readers or ready for reuse.</summary>
    public int Kept
    {
        get
        {
            lock (_lock)
            {
                return _retiredChunks + _free.Count;
            }
        }
    }

    /// <summary>Marks a reader active; pass the result to <see cref="ExitRead"/> when it no longer touches head points.</summary>
    public long EnterRead()
    {
        lock (_lock)
        {
            _readers[_epoch] = _readers.GetValueOrDefault(_epoch) + 1;
            return _epoch;
        }
    }

    /// <summary><see cref="EnterRead"/> until the scope is disposed: <c>using var read = recycler.Read();</c>.</summary>
    public ReadScope Read() => new(this, EnterRead());

    public void ExitRead(long epoch)
    {
        lock (_lock)
        {
            var n = _readers[epoch] - 1;
            if (n == 0)
            {
                _readers.Remove(epoch);
            }
            else
            {
                _readers[epoch] = n;
            }
        }
    }

    /// <summary>These sealed chunks have left every series' head: reuse them once no reader can see them.</summary>
    public void Retire(List<HeadChunk> chunks)
    {
        var full = chunks.FindAll(static c => c.Capacity == SeriesHead.ChunkSize);
        lock (_lock)
        {
            if (full.Count > 0)
            {
                _retired.Enqueue((_epoch, full));
                _retiredChunks += full.Count;
                while (_retiredChunks + _free.Count > _maxChunks && _retired.Count > 0)
                {
                    _retiredChunks -= _retired.Dequeue().Chunks.Count; // to the GC: a reader may still hold them
                }
            }

            _epoch++;
        }
    }

    /// <summary>An empty full-size chunk: a reclaimed one when there is one, else a new one.</summary>
    public HeadChunk Rent()
    {
        lock (_lock)
        {
            if (_free.Count == 0)
            {
                Reclaim();
            }

            if (_free.TryPop(out var chunk))
            {
                Reused++;
                chunk.Reset();
                return chunk;
            }
        }

        return new HeadChunk(SeriesHead.ChunkSize);
    }

    /// <summary>Under the lock: frees the retired chunks no active reader entered early enough to see.</summary>
    private void Reclaim()
    {
        var oldestReader = long.MaxValue;
        foreach (var epoch in _readers.Keys)
        {
            oldestReader = Math.Min(oldestReader, epoch);
        }

        while (_retired.Count > 0 && _retired.Peek().Epoch < oldestReader)
        {
            var (_, chunks) = _retired.Dequeue();
            _retiredChunks -= chunks.Count;
            foreach (var chunk in chunks)
            {
                _free.Push(chunk);
            }
        }
    }
}

/// <summary>An active reader of head chunks; disposing it leaves (see <see cref="ChunkRecycler.Read"/>).</summary>
internal readonly struct ReadScope(ChunkRecycler recycler, long epoch) : IDisposable
{
    public void Dispose() => recycler.ExitRead(epoch);
}
