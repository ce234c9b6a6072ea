namespace MetricStore.Core;

/// <summary>
/// The check a server makes before it opens anything in its data directory: that the directory and
/// every directory directly under it accept new files, and that the file system has room for at
/// least <see cref="ProbeBytes"/> more (written, fsynced and removed). A read-only mount, missing
/// permissions or a full disk then fail the start with one message that says which, before
/// recovery, SQLite or the artifact sweep could create or change a single file.
/// </summary>
/// <remarks>
/// The probe is a file named <c>.write-check.PID</c>; one left behind by a killed start is removed
/// by the next check, in whichever directory it was. Passing the check does not reserve the space: a disk can still fill up while
/// the server runs, and the storage engine then stops taking writes without acknowledging them.
/// </remarks>
public static class DataDirectoryCheck
{
    /// <summary>Bytes the probe writes and fsyncs in the data directory: room for a few WAL groups.</summary>
    public const int ProbeBytes = 1 << 20;

    private const string ProbePrefix = ".write-check.";
    private const int Enospc = 28;
    private const int Erofs = 30;
    private const int Edquot = 122;

    /// <summary>
    /// Creates the data directory if it is missing and proves it writable.
    /// </summary>
    /// <exception cref="IOException">The directory cannot be created or written, or its file system is full; the message names the directory and the reason.</exception>
    public static void EnsureWritable(string dataDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        var full = Path.GetFullPath(dataDirectory);
        try
        {
            Directory.CreateDirectory(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot create the data directory '{full}': {e.Message}", e);
        }

        Probe(full, full, ProbeBytes);
        foreach (var directory in Directory.EnumerateDirectories(full))
        {
            Probe(full, directory, 0);
        }
    }

    private static void Probe(string dataDirectory, string directory, int bytes)
    {
        var path = Path.Combine(directory, ProbePrefix + Environment.ProcessId);
        try
        {
            RemoveStaleProbes(directory);
            using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None))
            {
                if (bytes > 0)
                {
                    var block = new byte[64 * 1024];
                    for (var written = 0; written < bytes; written += block.Length)
                    {
                        file.Write(block, 0, Math.Min(block.Length, bytes - written));
                    }

                    file.Flush(flushToDisk: true);
                }
            }

            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(path);
            throw Explain(dataDirectory, directory, e);
        }
    }

    private static IOException Explain(string dataDirectory, string directory, Exception e)
    {
        var errno = e is IOException io ? io.HResult : 0;
        var free = FreeBytes(dataDirectory);
        const string Unchanged = "nothing in the data directory was changed";
        if (errno != Erofs && (errno is Enospc or Edquot || (free is { } f && f < ProbeBytes && e is IOException)))
        {
            return new IOException(
                $"the file system holding the data directory '{dataDirectory}' is full ({Describe(free)} free; the server needs at least {ProbeBytes >> 20} MiB to start). Free space and start again; {Unchanged}.", e);
        }

        var where = directory == dataDirectory ? "" : $" (in '{directory}')";
        var reason = errno == Erofs ? "it is on a read-only file system" : e.Message.TrimEnd('.');
        return new IOException(
            $"the data directory '{dataDirectory}' is not writable{where}: {reason}. MetricStore must create and write files there; fix the mount or the permissions and start again; {Unchanged}.", e);
    }

    private static long? FreeBytes(string directory)
    {
        try
        {
            return new DriveInfo(directory).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    private static string Describe(long? bytes) => bytes switch
    {
        null => "unknown space",
        < 1024 => $"{bytes} bytes",
        < 1 << 20 => $"{bytes / 1024.0:0.#} KiB",
        _ => $"{bytes / (1024.0 * 1024):0.#} MiB",
    };

    private static void RemoveStaleProbes(string directory)
    {
        foreach (var stale in Directory.EnumerateFiles(directory, ProbePrefix + "*"))
        {
            TryDelete(stale);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The probe's own failure is what gets reported.
        }
    }
}
