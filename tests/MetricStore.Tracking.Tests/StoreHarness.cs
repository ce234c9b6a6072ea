using MetricStore.Tests;

namespace MetricStore.Tracking.Tests;

/// <summary>A store over a real SQLite file in a temp directory, with a clock the test moves.</summary>
internal sealed class StoreHarness : IDisposable
{
    private readonly TempDirectory _directory = new();

    public StoreHarness()
    {
        Store = TrackingStore.Open(Options);
    }

    public ManualClock Clock { get; } = new(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));

    public TrackingStoreOptions Options => new() { DataDirectory = _directory.Path, Clock = Clock };

    public TrackingStore Store { get; private set; }

    public string DataDirectory => _directory.Path;

    public void Reopen()
    {
        Store.Dispose();
        Store = TrackingStore.Open(Options);
    }

    public void Dispose()
    {
        Store.Dispose();
        _directory.Dispose();
    }
}

internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
