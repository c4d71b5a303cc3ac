namespace TxLog.Mvcc;

/// <summary>Isolation levels of the MVCC engine (see docs/isolation.md for the anomalies each allows).</summary>
public enum TransactionIsolation
{
    /// <summary>Reads see the latest write of any transaction, committed or not.</summary>
    ReadUncommitted,

    /// <summary>Each read sees the latest committed version at the time of the read.</summary>
    ReadCommitted,

    /// <summary>All reads see one snapshot taken at begin; a write to a row changed since then fails (no lost updates).</summary>
    RepeatableRead,

    /// <summary>RepeatableRead plus validation at commit of every row and range read: write skew and phantoms fail the commit.</summary>
    Serializable,
}

/// <summary>When a commit of the MVCC engine is acknowledged relative to the redo log's fsync.</summary>
public enum LogSyncMode
{
    /// <summary>After the redo record is fsynced; concurrent commits share one fsync.</summary>
    Instant,

    /// <summary>Before the fsync; the redo log is fsynced at least every <see cref="MvccOptions.SyncInterval"/>.</summary>
    Periodic,

    /// <summary>Never fsynced by the engine (only at close): a power loss may lose any recent commit.</summary>
    NoSync,
}

/// <summary>Settings of a <see cref="TransactionEngine"/>.</summary>
public sealed class MvccOptions
{
    /// <summary>When commits are acknowledged. Default <see cref="LogSyncMode.Instant"/>.</summary>
    public LogSyncMode SyncMode { get; set; } = LogSyncMode.Instant;

    /// <summary>Periodic mode: the longest time a commit stays un-fsynced (the loss window). Default 100 ms. At most int.MaxValue milliseconds (about 24.8 days).</summary>
    public TimeSpan SyncInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Periodic mode: commits acknowledged but not yet fsynced before new commits wait (backpressure). Default 10,000.</summary>
    public int MaxPendingCommits { get; set; } = 10_000;

    /// <summary>How long a writer waits for a row lock before <see cref="WriteConflictException"/>. Default 5 s. At most int.MaxValue milliseconds (about 24.8 days).</summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Largest key in bytes. Default 1 KiB.</summary>
    public int MaxKeyBytes { get; set; } = 1024;

    /// <summary>Largest value in bytes. Default 512 KiB.</summary>
    public int MaxValueBytes { get; set; } = 512 * 1024;

    /// <summary>Checkpoint at least this often (null: only by redo size and on request). Default 5 minutes. At most int.MaxValue milliseconds (about 24.8 days).</summary>
    public TimeSpan? CheckpointInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Checkpoint when this much redo accumulated since the last one. Default 64 MiB.</summary>
    public long CheckpointRedoBytes { get; set; } = 64L << 20;

    internal void Validate()
    {
        if (!Enum.IsDefined(SyncMode))
        {
            throw new ArgumentOutOfRangeException(nameof(SyncMode));
        }

        if (SyncInterval <= TimeSpan.Zero || LockTimeout < TimeSpan.Zero || (CheckpointInterval is { } c && c <= TimeSpan.Zero))
        {
            throw new ArgumentOutOfRangeException(nameof(MvccOptions), "Intervals must be positive (LockTimeout may be zero).");
        }

        // Timers and Monitor.Wait take at most int.MaxValue ms: longer failed the open after recovery
        // (SyncInterval, CheckpointInterval) or every lock wait (LockTimeout).
        AtMostIntMaxMilliseconds(SyncInterval, nameof(SyncInterval));
        AtMostIntMaxMilliseconds(LockTimeout, nameof(LockTimeout));
        if (CheckpointInterval is { } every)
        {
            AtMostIntMaxMilliseconds(every, nameof(CheckpointInterval));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPendingCommits, 1, nameof(MaxPendingCommits));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxKeyBytes, 1, nameof(MaxKeyBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxValueBytes, 0, nameof(MaxValueBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(CheckpointRedoBytes, 1, nameof(CheckpointRedoBytes));
    }

    private static void AtMostIntMaxMilliseconds(TimeSpan value, string name)
    {
        if (value.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(name, value, $"At most {TimeSpan.FromMilliseconds(int.MaxValue)} (int.MaxValue milliseconds).");
        }
    }
}
