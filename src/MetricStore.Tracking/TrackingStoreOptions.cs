namespace MetricStore.Tracking;

/// <summary>Immutable settings of a <see cref="TrackingStore"/>. Build it directly in tests and benchmarks.</summary>
public sealed record TrackingStoreOptions
{
    /// <summary>The data directory; the store keeps its database at <c>meta.db</c> inside it.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>The clock for start, end and creation times.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    public string DatabasePath => Path.Combine(DataDirectory, "meta.db");
}
