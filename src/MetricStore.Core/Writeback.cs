using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MetricStore.Core;

/// <summary>
/// Starts writing a file's dirty pages to disk without waiting (Linux sync_file_range with
/// SYNC_FILE_RANGE_WRITE; elsewhere nothing). A large file written and then fsynced otherwise
/// writes all of it inside the fsync, after the last byte; started early, the writeback overlaps
/// the transfer, the final fsync is short, and dirty memory stays bounded (RocksDB's
/// bytes_per_sync does the same). It is a hint: durability still comes from the fsync.
/// </summary>
public static partial class Writeback
{
    /// <summary>Bytes written between two writeback hints.</summary>
    public const long Interval = 8L * 1024 * 1024;

    private const uint SyncFileRangeWrite = 2;

    public static void Start(SafeFileHandle file, long offset, long length)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!OperatingSystem.IsLinux() || length <= 0)
        {
            return;
        }

        // Errors are ignored: the fsync that follows reports any real I/O error.
        _ = SyncFileRange((int)file.DangerousGetHandle(), offset, length, SyncFileRangeWrite);
    }

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(int fd, long offset, long nbytes, uint flags);
}
