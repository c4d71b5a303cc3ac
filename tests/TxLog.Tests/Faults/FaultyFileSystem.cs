using TxLog.Storage;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Faults;

/// <summary>
/// A file system that fails on cue, for fault-injection tests through the <see cref="IFileSystem"/>
/// seam (no sleeps, no real full disk). Wraps <see cref="OsFileSystem.Instance"/>; faults apply to
/// the files <see cref="Targets"/> selects (default: segment <c>.log</c> files) and only once armed:
/// <list type="bullet">
/// <item><see cref="FailWrite"/>: the Nth write from now writes a prefix of its bytes (none by
/// default), then throws <see cref="IOException"/>; later writes go through.</item>
/// <item><see cref="FailSync"/>: the Nth fsync from now throws (once; later fsyncs succeed, as on
/// Linux, where an fsync error is reported once and the dirty pages may be gone). It may first block
/// until <see cref="ReleaseSync"/>, so a test can pile up waiters behind it.</item>
/// <item><see cref="FailSyncAfterWriteOfAtLeast"/>: the first fsync made by a thread whose last write
/// was that large fails (once): aims at the fsync of the zeros a partition preallocates ahead of its
/// data (1 MiB pieces), which no append writes.</item>
/// <item><see cref="DiskBudgetBytes"/>: a full disk. Writes that extend a file consume the budget
/// (overwriting bytes the file already has needs no space, as with preallocated blocks); the write
/// that exceeds it writes the part that fits, then throws; later extending writes throw at once.</item>
/// </list>
/// Thread-safe.
/// </summary>
internal sealed class FaultyFileSystem(IFileSystem? inner = null) : DelegatingFileSystem(inner)
{
    /// <summary>Message of the injected <see cref="IOException"/>s, so tests can tell them from real ones.</summary>
    public const string InjectedMessage = "Injected fault";

    private readonly object _gate = new();
    private readonly ManualResetEventSlim _syncEntered = new(false);
    private readonly ManualResetEventSlim _syncReleased = new(true);
    private int _writesUntilFailure;    // 0 = not armed
    private int _partialBytes;
    private int _syncsUntilFailure;     // 0 = not armed
    private long? _budget;
    private int _syncAfterWriteOfAtLeast;  // 0 = not armed
    private readonly ThreadLocal<int> _lastWriteBytes = new();
    private int _faults;

    /// <summary>Which files the faults apply to (by path). Default: segment logs.</summary>
    public Func<string, bool> Targets { get; set; } = static path => path.EndsWith(".log", StringComparison.Ordinal);

    /// <summary>Number of faults injected so far.</summary>
    public int Faults => Volatile.Read(ref _faults);

    /// <summary>Bytes the targeted files may still take before the disk is full; null = no limit.</summary>
    public long? DiskBudgetBytes
    {
        get
        {
            lock (_gate)
            {
                return _budget;
            }
        }

        set
        {
            lock (_gate)
            {
                _budget = value;
            }
        }
    }

    /// <summary>Makes the <paramref name="nth"/> targeted write from now fail after writing <paramref name="partialBytes"/> of its bytes.</summary>
    public void FailWrite(int nth = 1, int partialBytes = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nth, 1);
        lock (_gate)
        {
            _writesUntilFailure = nth;
            _partialBytes = partialBytes;
        }
    }

    /// <summary>
    /// Makes the <paramref name="nth"/> targeted fsync from now fail. With <paramref name="block"/>,
    /// it first signals <see cref="WaitForBlockedSync"/> and waits for <see cref="ReleaseSync"/>.
    /// </summary>
    public void FailSync(int nth = 1, bool block = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nth, 1);
        lock (_gate)
        {
            _syncsUntilFailure = nth;
            if (block)
            {
                _syncReleased.Reset();
            }
        }
    }

    /// <summary>Makes the first fsync by a thread whose last targeted write had at least <paramref name="bytes"/> bytes fail (once).</summary>
    public void FailSyncAfterWriteOfAtLeast(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1);
        lock (_gate)
        {
            _syncAfterWriteOfAtLeast = bytes;
        }
    }

    /// <summary>Waits until the failing fsync has started and is blocked.</summary>
    public bool WaitForBlockedSync(TimeSpan timeout) => _syncEntered.Wait(timeout);

    /// <summary>Lets a blocked failing fsync go on (and fail).</summary>
    public void ReleaseSync() => _syncReleased.Set();

    // Decides the fate of a write of `length` bytes at `position` of a file of `fileLength` bytes: how
    // many bytes really go to the file, and whether it then fails.
    private (int Written, bool Fail) PlanWrite(long position, int length, long fileLength)
    {
        _lastWriteBytes.Value = length;
        lock (_gate)
        {
            int written = length;
            bool fail = false;
            if (_writesUntilFailure > 0 && --_writesUntilFailure == 0)
            {
                written = Math.Min(_partialBytes, length);
                fail = true;
            }

            if (_budget is { } budget)
            {
                long extendFrom = Math.Max(position, fileLength);
                if (position + written - extendFrom > budget)
                {
                    written = (int)Math.Max(0, extendFrom + budget - position);
                    fail = true;
                }

                _budget = budget - Math.Max(0, position + written - extendFrom);
            }

            if (fail)
            {
                _faults++;
            }

            return (written, fail);
        }
    }

    private bool PlanSync()
    {
        lock (_gate)
        {
            if (_syncsUntilFailure > 0 && --_syncsUntilFailure == 0)
            {
                _faults++;
                return true;
            }

            if (_syncAfterWriteOfAtLeast > 0 && _lastWriteBytes.Value >= _syncAfterWriteOfAtLeast)
            {
                _syncAfterWriteOfAtLeast = 0;
                _faults++;
                return true;
            }

            return false;
        }
    }

    protected override IStorageFile WrapFile(string path, IStorageFile file) => Targets(path) ? new FaultyFile(this, file) : file;

    private sealed class FaultyFile(FaultyFileSystem owner, IStorageFile inner) : DelegatingFile(inner)
    {
        public override void Write(long position, ReadOnlySpan<byte> data)
        {
            (int written, bool fail) = owner.PlanWrite(position, data.Length, Inner.Length);
            if (written > 0)
            {
                Inner.Write(position, data[..written]);
            }

            if (fail)
            {
                throw new IOException($"{InjectedMessage}: write of {data.Length} bytes at {position} of '{Path}' stopped after {written} bytes.");
            }
        }

        public override void Sync()
        {
            if (owner.PlanSync())
            {
                owner._lastWriteBytes.Value = 0;
                owner._syncEntered.Set();
                if (!owner._syncReleased.Wait(TimeSpan.FromSeconds(30)))
                {
                    throw new TimeoutException("The blocked fsync was never released.");
                }

                throw new IOException($"{InjectedMessage}: fsync of '{Path}' failed.");
            }

            Inner.Sync();
        }

    }
}
