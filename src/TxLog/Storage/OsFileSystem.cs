using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace TxLog.Storage;

/// <summary>
/// The real file system: <see cref="RandomAccess"/> for positional I/O, fdatasync(2) on Linux for
/// durability (fsync elsewhere), fsync of directories on Unix. Thread-safe.
/// </summary>
internal sealed class OsFileSystem : IFileSystem
{
    /// <summary>The shared instance.</summary>
    public static readonly OsFileSystem Instance = new();

    public IStorageFile OpenFile(string path, FileOpenMode mode)
    {
        (FileMode fileMode, FileAccess access) = mode switch
        {
            FileOpenMode.CreateNew => (FileMode.CreateNew, FileAccess.ReadWrite),
            FileOpenMode.OpenOrCreate => (FileMode.OpenOrCreate, FileAccess.ReadWrite),
            FileOpenMode.OpenExisting => (FileMode.Open, FileAccess.ReadWrite),
            _ => (FileMode.Open, FileAccess.Read),
        };

        // FileShare.ReadWrite: readers (and the CLI) may open segments while the store writes them;
        // exclusive ownership of the directory is the lock file's job, not every file's.
        SafeFileHandle handle = File.OpenHandle(path, fileMode, access, FileShare.ReadWrite | FileShare.Delete);
        return new OsStorageFile(path, handle);
    }

    public bool FileExists(string path) => File.Exists(path);

    public bool DirectoryExists(string path) => Directory.Exists(path);

    public void CreateDirectory(string path) => Directory.CreateDirectory(path);

    public void DeleteFile(string path) => File.Delete(path);

    public void DeleteDirectory(string path)
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
    }

    public void MoveFile(string source, string destination) => File.Move(source, destination, overwrite: true);

    public void MoveDirectory(string source, string destination) => Directory.Move(source, destination);

    public string[] GetFiles(string directory, string searchPattern) => Directory.GetFiles(directory, searchPattern);

    public string[] GetDirectories(string directory) => Directory.GetDirectories(directory);

    public void SyncDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return; // NTFS makes directory entries durable with the file's metadata; no call exists.
        }

        int fd = Native.open(path, Native.O_RDONLY);
        if (fd < 0)
        {
            throw new IOException($"Could not open directory '{path}' to sync it (errno {Marshal.GetLastPInvokeError()}).");
        }

        try
        {
            if (Native.fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory '{path}' failed (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = Native.close(fd);
        }
    }

    private const int LockAttempts = 10;
    private const int LockRetryDelayMs = 20;

    /// <inheritdoc/>
    public IDisposable? TryLock(string path)
    {
        // On Unix, .NET maps FileShare.None to an exclusive flock(2), which also conflicts with a
        // second open in the same process (a new open file description). A read-only probe (the txlog
        // tool checking whether the store is open) holds a shared lock for an instant: retry briefly
        // so that it cannot make a real open fail. A store that has the directory open holds the lock
        // for good, so the retries only delay the answer.
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (attempt < LockAttempts - 1)
            {
                Thread.Sleep(LockRetryDelayMs);
            }
            catch (IOException)
            {
                return null;
            }
        }
    }

    private sealed class OsStorageFile(string path, SafeFileHandle handle) : IStorageFile
    {
        public string Path { get; } = path;

        public long Length => RandomAccess.GetLength(handle);

        public void Write(long position, ReadOnlySpan<byte> data) => RandomAccess.Write(handle, data, position);

        public int Read(long position, Span<byte> buffer)
        {
            int total = 0;
            while (total < buffer.Length)
            {
                int n = RandomAccess.Read(handle, buffer.Slice(total), position + total);
                if (n == 0)
                {
                    break;
                }

                total += n;
            }

            return total;
        }

        public void Sync()
        {
            if (OperatingSystem.IsLinux())
            {
                bool added = false;
                handle.DangerousAddRef(ref added);
                try
                {
                    if (Native.fdatasync((int)handle.DangerousGetHandle()) != 0)
                    {
                        throw new IOException($"fdatasync of '{Path}' failed (errno {Marshal.GetLastPInvokeError()}).");
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
            else
            {
                RandomAccess.FlushToDisk(handle);
            }
        }

        public void SetLength(long length) => RandomAccess.SetLength(handle, length);

        public void Dispose() => handle.Dispose();
    }

    private static class Native
    {
        // open(2) of a directory read-only is allowed everywhere; O_DIRECTORY differs per architecture, so it is not used.
        public const int O_RDONLY = 0;

        [DllImport("libc", SetLastError = true)]
        public static extern int fdatasync(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        public static extern int close(int fd);
    }
}
