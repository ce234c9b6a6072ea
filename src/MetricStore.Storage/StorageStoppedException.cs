namespace MetricStore.Storage;

/// <summary>
/// The engine's WAL writer failed a write or an fsync (a full disk, an I/O error) and stopped: after
/// such a failure the state of the log is unknown, so the engine takes no more writes and
/// acknowledges nothing more until a restart replays the log. What was acknowledged stays durable.
/// </summary>
public sealed class StorageStoppedException(Exception cause)
    : IOException(
        $"the storage engine stopped taking writes after a write failure ({cause.Message}); nothing after the last acknowledged request was stored. Fix the cause (for example free disk space), restart the server and re-send what was not acknowledged",
        cause);
