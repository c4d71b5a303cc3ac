namespace TxLog.Durability;

/// <summary>When an append or commit is acknowledged relative to fsync.</summary>
public enum DurabilityMode
{
    /// <summary>
    /// Acknowledge only after the bytes are fsynced (fdatasync on Linux). Concurrent appenders waiting
    /// for durability share one fsync (group commit). Survives kill -9 and power loss.
    /// </summary>
    GroupCommit,

    /// <summary>
    /// Acknowledge after the write reaches the OS page cache; fsync every
    /// <see cref="LogStoreOptions.FlushInterval"/>. A process crash loses nothing (the page cache
    /// survives it); a power loss or kernel crash loses at most the last interval (plus the duration
    /// of one fsync). The high watermark advances at each fsync.
    /// </summary>
    Periodic,

    /// <summary>
    /// Acknowledge after the write reaches the page cache and never fsync except at close and on
    /// explicit flushes. A process crash loses nothing; a power loss may lose anything not flushed.
    /// The high watermark follows the log end offset, since nothing is promised.
    /// </summary>
    None,
}
