using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// The libc calls the raw engines and the cold scan need. .NET offers no fdatasync, and its full-flush APIs
/// map to fsync, which would also force inode timestamps — the references must use the cheaper call.
/// Linux only: the comparison is defined for Linux (WORKLOADS.md).
/// </summary>
internal static partial class NativeIo
{
    /// <summary>True when these calls are available on this OS.</summary>
    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>fdatasync(2): flushes the file's data and the metadata needed to read it back (size, extents).</summary>
    public static void DataSync(SafeFileHandle handle) => Sync(handle, dataOnly: true);

    /// <summary>fsync(2): flushes the file's data and all of its metadata.</summary>
    public static void FullSync(SafeFileHandle handle) => Sync(handle, dataOnly: false);

    /// <summary>sync(2): schedules every dirty page of every file system for writing (Linux waits for it).</summary>
    public static void SyncAll() => SysSync();

    private static void Sync(SafeFileHandle handle, bool dataOnly)
    {
        // AddRef so the descriptor cannot be closed and reused by another file while the call runs.
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            int fd = (int)handle.DangerousGetHandle();
            if ((dataOnly ? FDataSync(fd) : FSync(fd)) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                string name = dataOnly ? "fdatasync" : "fsync";
                throw new IOException($"{name} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FDataSync(int fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "sync")]
    private static partial void SysSync();
}
