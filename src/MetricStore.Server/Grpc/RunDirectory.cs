using System.Collections.Concurrent;
using MetricStore.Tracking;

namespace MetricStore.Server.Grpc;

/// <summary>
/// Answers "does this run exist?" for ingest without a database read per batch: runs that exist
/// are remembered (runs are never deleted yet); unknown ids are asked again each time.
/// </summary>
internal sealed class RunDirectory(TrackingStore tracking)
{
    private readonly ConcurrentDictionary<string, bool> _known = new(StringComparer.Ordinal);

    public bool Exists(string runId)
    {
        if (_known.ContainsKey(runId))
        {
            return true;
        }

        if (!tracking.RunExists(runId))
        {
            return false;
        }

        _known.TryAdd(runId, true);
        return true;
    }
}
