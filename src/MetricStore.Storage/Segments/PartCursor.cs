namespace MetricStore.Storage.Segments;

/// <summary>
/// Reads a column given as parts one after the other (a series' head chunks) as windows of
/// consecutive values, front to back: a window inside one part is that part's memory, one that
/// straddles parts is copied into a scratch buffer. So an encoder that works on fixed-size blocks
/// needs no copy of the whole column.
/// </summary>
internal ref struct PartCursor<T>
{
    private readonly IReadOnlyList<ReadOnlyMemory<T>> _parts;
    private ReadOnlySpan<T> _current; // the part holding the last window's first value
    private int _part;
    private int _partStart; // the column index of that part's first value

    public PartCursor(IReadOnlyList<ReadOnlyMemory<T>> parts)
    {
        _parts = parts;
        _current = parts.Count == 0 ? default : parts[0].Span;
    }

    /// <summary>
    /// Values [<paramref name="from"/>, from + <paramref name="length"/>) of the column, copied into
    /// <paramref name="scratch"/> when they span more than one part. Windows must not move backwards
    /// and must lie within the column.
    /// </summary>
    public ReadOnlySpan<T> Window(int from, int length, T[] scratch)
    {
        while (from >= _partStart + _current.Length)
        {
            _partStart += _current.Length;
            _current = _parts[++_part].Span;
        }

        var local = from - _partStart;
        if (local + length <= _current.Length)
        {
            return _current.Slice(local, length);
        }

        var copied = 0;
        for (var p = _part; copied < length; p++, local = 0)
        {
            var span = _parts[p].Span;
            var take = Math.Min(length - copied, span.Length - local);
            span.Slice(local, take).CopyTo(scratch.AsSpan(copied));
            copied += take;
        }

        return scratch.AsSpan(0, length);
    }
}
