namespace TxLog.Storage;

/// <summary>How <see cref="IFileSystem.OpenFile"/> opens a file.</summary>
internal enum FileOpenMode
{
    /// <summary>Create a new file; fail if it exists.</summary>
    CreateNew,

    /// <summary>Open an existing file or create it.</summary>
    OpenOrCreate,

    /// <summary>Open an existing file for reading and writing; fail if it is missing.</summary>
    OpenExisting,

    /// <summary>Open an existing file for reading only (verification tools, readers of closed stores).</summary>
    ReadOnly,
}

/// <summary>
/// The file-system seam: every file operation of the storage engine goes through it, so tests can
/// inject faults (a failing write or fsync, a full disk) and crash-like states deterministically.
/// Implementations must be thread-safe.
/// </summary>
internal interface IFileSystem
{
    /// <summary>Opens a file for positional reads and writes.</summary>
    IStorageFile OpenFile(string path, FileOpenMode mode);

    /// <summary>True when a regular file exists at the path.</summary>
    bool FileExists(string path);

    /// <summary>True when a directory exists at the path.</summary>
    bool DirectoryExists(string path);

    /// <summary>Creates a directory and its parents.</summary>
    void CreateDirectory(string path);

    /// <summary>Deletes a file if it exists.</summary>
    void DeleteFile(string path);

    /// <summary>Deletes a directory and everything in it, if it exists.</summary>
    void DeleteDirectory(string path);

    /// <summary>Renames a file, replacing the target atomically (rename(2)).</summary>
    void MoveFile(string source, string destination);

    /// <summary>Renames a directory.</summary>
    void MoveDirectory(string source, string destination);

    /// <summary>Names (full paths) of the files in a directory matching a pattern like "*.log".</summary>
    string[] GetFiles(string directory, string searchPattern);

    /// <summary>Full paths of the subdirectories of a directory.</summary>
    string[] GetDirectories(string directory);

    /// <summary>
    /// Makes the directory's entries (creates, renames, deletes) durable: fsync of the directory on
    /// Unix; a no-op where the platform has no such call.
    /// </summary>
    void SyncDirectory(string path);

    /// <summary>
    /// Takes an exclusive lock on a lock file, creating it; returns null when another holder (this
    /// process or another) has it. Disposing the returned handle releases the lock.
    /// </summary>
    IDisposable? TryLock(string path);
}

/// <summary>
/// A file opened through the <see cref="IFileSystem"/> seam: positional reads and writes, explicit
/// durability. Not synchronised: callers serialise writes; concurrent positional reads are safe.
/// </summary>
internal interface IStorageFile : IDisposable
{
    /// <summary>The file's path.</summary>
    string Path { get; }

    /// <summary>Current length in bytes.</summary>
    long Length { get; }

    /// <summary>Writes all of <paramref name="data"/> at <paramref name="position"/>.</summary>
    void Write(long position, ReadOnlySpan<byte> data);

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="position"/>; returns bytes read (0 at end).</summary>
    int Read(long position, Span<byte> buffer);

    /// <summary>
    /// Makes written data durable (fdatasync on Linux: data plus the metadata needed to read it back,
    /// such as the size).
    /// </summary>
    void Sync();

    /// <summary>Truncates or extends the file.</summary>
    void SetLength(long length);
}
