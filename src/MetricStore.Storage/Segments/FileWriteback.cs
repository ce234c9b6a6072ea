using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MetricStore.Storage.Segments;

/// <summary>
/// Starts the kernel's writeback of a file range without waiting for it (Linux
/// <c>sync_file_range(SYNC_FILE_RANGE_WRITE)</c>, what RocksDB's <c>bytes_per_sync</c> does), so
/// that a large file being written never has more than a few MiB dirty. A seal or compaction that
/// left a hundred MB dirty and then fsynced it made the WAL's fsync, which acks wait for, queue
/// behind that burst: 50–80 ms fsyncs under ingest (docs/benchmarks.md). Durability still comes
/// from the fsync at the end; this only spreads the writing out. Elsewhere it does nothing.
/// </summary>
internal static partial class FileWriteback
{
    /// <summary>Bytes a point file may have written since the last writeback started before the next one starts.</summary>
    public const long BytesPerSync = 4L << 20;

    private const uint SyncFileRangeWrite = 2; // SYNC_FILE_RANGE_WRITE: start writeback of dirty pages in the range, do not wait

    /// <summary>Starts writeback of [offset, offset + length); false where the call is not available or failed (then the final fsync does it all).</summary>
    public static bool Start(SafeFileHandle handle, long offset, long length)
    {
        if (!OperatingSystem.IsLinux() || length <= 0)
        {
            return false;
        }

        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return SyncFileRange((int)handle.DangerousGetHandle(), offset, length, SyncFileRangeWrite) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false; // a libc without it: the final fsync writes everything
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(int fd, long offset, long nbytes, uint flags);
}
