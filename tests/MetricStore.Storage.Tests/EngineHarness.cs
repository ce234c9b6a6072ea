using MetricStore.Core;
using MetricStore.Tests;

namespace MetricStore.Storage.Tests;

/// <summary>A storage engine over a real temp directory, reopenable to exercise WAL recovery.</summary>
internal sealed class EngineHarness : IAsyncDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly List<string> _log = [];

    private EngineHarness()
    {
    }

    public StorageEngine Engine { get; private set; } = null!;

    public string DataDirectory => _directory.Path;

    public string WalDirectory => Path.Combine(_directory.Path, "wal");

    public IReadOnlyList<string> Log => _log;

    public static EngineHarness Open(Durability durability = Durability.Sync)
    {
        var h = new EngineHarness();
        h.Engine = StorageEngine.Open(h.Options(durability));
        return h;
    }

    public StorageOptions Options(Durability durability = Durability.Sync) => new()
    {
        DataDirectory = _directory.Path,
        Durability = durability,
        Log = (level, message) =>
        {
            lock (_log)
            {
                _log.Add($"{level}: {message}");
            }
        },
    };

    public async Task ReopenAsync()
    {
        await Engine.DisposeAsync();
        Engine = StorageEngine.Open(Options());
    }

    /// <summary>Reads a series (segments and head) synchronously, for terse assertions.</summary>
    public SeriesColumns? Read(SeriesKey key, long from = long.MinValue, long to = long.MaxValue) => Read(Engine, key, from, to);

    public static SeriesColumns? Read(StorageEngine engine, SeriesKey key, long from = long.MinValue, long to = long.MaxValue) =>
        engine.ReadSeriesAsync(key, from, to).AsTask().GetAwaiter().GetResult();

    public async Task CloseAsync() => await Engine.DisposeAsync();

    /// <summary>Opens again after <see cref="CloseAsync"/> (files may have been changed in between).</summary>
    public Task ReopenAsyncAfterClose()
    {
        Engine = StorageEngine.Open(Options());
        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync();
        _directory.Dispose();
    }

    public static readonly string RunA = RunId.New();

    public static SeriesKey Key(string metric = "loss", string? rank = null) =>
        SeriesKey.Create("key", RunA, metric, rank is null ? null : [new("rank", rank)]);

    public static WriteBatch Batch(string writer, ulong seq, params (SeriesKey Key, long[] Steps, double[] Values)[] series) => new()
    {
        WriterId = writer,
        Seq = seq,
        Series = series.Select(s => new SeriesPoints
        {
            Key = s.Key,
            Count = s.Steps.Length,
            Steps = s.Steps,
            Values = s.Values,
            Timestamps = [1_700_000_000_000 + (long)seq],
            SharedTimestamp = true,
        }).ToList(),
    };

    public static (long[] Steps, double[] Values) Range(long from, int count, Func<long, double> value)
    {
        var steps = new long[count];
        var values = new double[count];
        for (var i = 0; i < count; i++)
        {
            steps[i] = from + i;
            values[i] = value(from + i);
        }

        return (steps, values);
    }
}
