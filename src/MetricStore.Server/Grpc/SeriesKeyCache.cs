using MetricStore.Core;

namespace MetricStore.Server.Grpc;

/// <summary>
/// The series keys one ingest stream has sent, by their wire bytes: a batch whose key bytes were
/// seen before gets the same validated <see cref="SeriesKey"/> without decoding a string. A rank
/// sends the same few keys in every request; decoding them anew made five strings, a label list
/// and a key per batch, which for requests of thousands of short batches was most of what ingest
/// allocated (docs/benchmarks.md, "Many series").
/// </summary>
/// <remarks>
/// One per stream, used by its reading loop only, so no locking; it goes with the stream. Past
/// <see cref="MaxKeys"/> it starts again empty: a stream that cycles through more keys than that
/// decodes them as before, it never holds more.
/// </remarks>
internal sealed class SeriesKeyCache
{
    /// <summary>Keys kept per stream: about 4 MB at the usual key size.</summary>
    public const int MaxKeys = 16_384;

    private readonly Dictionary<byte[], SeriesKey> _keys = new(WireBytesComparer.Instance);
    private readonly Dictionary<byte[], SeriesKey>.AlternateLookup<ReadOnlySpan<byte>> _byWire;

    public SeriesKeyCache() => _byWire = _keys.GetAlternateLookup<ReadOnlySpan<byte>>();

    public int Count => _keys.Count;

    /// <summary>Keys added: decoded and validated because they were not here (for tests).</summary>
    public long Misses { get; private set; }

    public bool TryGet(ReadOnlySpan<byte> wire, out SeriesKey key) => _byWire.TryGetValue(wire, out key!);

    /// <summary>Remembers a key that passed validation.</summary>
    public void Add(ReadOnlySpan<byte> wire, SeriesKey key)
    {
        Misses++;
        if (_keys.Count >= MaxKeys)
        {
            _keys.Clear();
        }

        _byWire[wire] = key;
    }

    private sealed class WireBytesComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly WireBytesComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj) => GetHashCode((ReadOnlySpan<byte>)obj);

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var hash = default(HashCode);
            hash.AddBytes(alternate);
            return hash.ToHashCode();
        }

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
    }
}
