using System.Buffers.Binary;

namespace TxLog.Benchmarks.Compare;

/// <summary>The workloads of the comparison (see WORKLOADS.md); an engine opens its store for one of them.</summary>
public enum Workload
{
    /// <summary>W1: one writer appends as fast as it can, then one durable flush.</summary>
    Append,

    /// <summary>W2: K writers, each commits one record durably at a time.</summary>
    Commit,

    /// <summary>W3: K writers, each runs the order transaction (two balance updates + three outbox messages).</summary>
    Outbox,

    /// <summary>
    /// W3 log-only form: K writers, each appends the three outbox messages atomically and durably,
    /// without the account updates (<c>w3log</c>; JSON <c>outbox_log</c>).
    /// </summary>
    OutboxLog,

    /// <summary>W4: load like W1, close, reopen, then one timed sequential read.</summary>
    Scan,

    /// <summary>
    /// TxLog only: one writer's records/s with an idempotent producer versus a transactional one that
    /// commits every 100 ms (<c>txn-overhead</c>; JSON <c>txn_overhead_idempotent</c> and
    /// <c>txn_overhead_transactional</c>). See <see cref="TxLogWorkloads"/>.
    /// </summary>
    TxnOverhead,

    /// <summary>
    /// TxLog only: a log written in transactions with 10% aborted, scanned read-uncommitted and
    /// read-committed (<c>rc-scan</c>; JSON <c>scan_read_uncommitted</c> and <c>scan_read_committed</c>).
    /// See <see cref="TxLogWorkloads"/>.
    /// </summary>
    RcScan,

    /// <summary>
    /// Point writes: a key-value table of 1M 16-byte keys with 100-byte values (untimed load), then K writers
    /// each upsert one random key per durable transaction (<c>kv-put</c>). Engines implementing
    /// <see cref="IKvEngine"/> only: TxLog (JSON <c>kv_put_instant</c>, <c>kv_put_periodic</c>,
    /// <c>kv_put_nosync</c>), SQLite (<c>kv_put_full</c>, <c>kv_put_normal</c>), raw-prealloc (<c>kv_put</c>).
    /// </summary>
    KvPut,

    /// <summary>
    /// TxLog only: snapshot point reads on the same 1M keys, 1 and 100 Gets per RepeatableRead transaction,
    /// K = 1, 2 readers, against the same lookups in a <c>ConcurrentDictionary</c> (<c>kv-read</c>; JSON
    /// <c>kv_read</c>, <c>kv_read_100</c>). See <see cref="MvccWorkloads"/>.
    /// </summary>
    KvRead,

    /// <summary>
    /// TxLog only: time to reopen the MVCC engine from ~1 GiB of redo and from a checkpoint of 1M entries
    /// (<c>mvcc-recovery</c>; JSON <c>mvcc_recovery_redo</c>, <c>mvcc_recovery_checkpoint</c>). See <see cref="MvccWorkloads"/>.
    /// </summary>
    MvccRecovery,

    /// <summary>
    /// TxLog only: managed heap bytes per map entry after loading 1M entries (<c>mvcc-memory</c>; JSON
    /// <c>mvcc_memory</c>). See <see cref="MvccWorkloads"/>.
    /// </summary>
    MvccMemory,
}

/// <summary>
/// A peer under comparison. Implementations are stateless descriptors registered in
/// <see cref="CompareRunner"/>; each run opens a fresh <see cref="IEngineStore"/> in a fresh directory.
/// </summary>
/// <remarks>
/// To add an engine: write one class implementing this interface and <see cref="IEngineStore"/> (plus the
/// writers it hands out), then add one line to the engine list in <see cref="CompareRunner"/>. A store method
/// that throws <see cref="NotSupportedException"/> makes the runner skip that workload for the engine.
/// The TxLog-only workloads (<see cref="Workload.TxnOverhead"/>, <see cref="Workload.RcScan"/>,
/// <see cref="Workload.KvRead"/>, <see cref="Workload.MvccRecovery"/>, <see cref="Workload.MvccMemory"/>) never
/// reach <see cref="OpenAsync"/>: they use TxLog's own API (<see cref="TxLogWorkloads"/>, <see cref="MvccWorkloads"/>)
/// and the runner skips every other engine for them. <see cref="Workload.KvPut"/> does not reach it either: it
/// runs on engines that also implement <see cref="IKvEngine"/>.
/// </remarks>
public interface IEngine
{
    /// <summary>The name used in <c>--engines</c> and in the JSON output (e.g. <c>sqlite</c>).</summary>
    string Name { get; }

    /// <summary>
    /// Opens (creating if absent) the engine's store in <paramref name="directory"/>, configured for
    /// <paramref name="workload"/>. Untimed. For <see cref="Workload.Scan"/> it is called twice on the same
    /// directory: once to load and once, after the first store was disposed, to read what was loaded.
    /// </summary>
    ValueTask<IEngineStore> OpenAsync(string directory, Workload workload);
}

/// <summary>
/// One open store of an engine. Only the members needed by the workload it was opened for are called.
/// Every payload buffer passed in is reused by the runner as soon as the returned task completes, so an
/// engine must copy (or finish with) it before completing.
/// </summary>
/// <remarks>
/// Synchronous engines do their work inline and return a completed <see cref="ValueTask"/>: the runner runs
/// every writer as a <see cref="TaskCreationOptions.LongRunning"/> task, so a blocking engine keeps a
/// dedicated thread for the whole run. Asynchronous engines simply await; their continuations run on the pool.
/// </remarks>
public interface IEngineStore : IAsyncDisposable
{
    /// <summary>W1 and the W4 load: append one record without durability. Called from one thread only.</summary>
    ValueTask AppendAsync(ReadOnlyMemory<byte> payload);

    /// <summary>W1 and the W4 load: make everything appended so far durable. Timed in W1.</summary>
    ValueTask FlushAsync();

    /// <summary>W2: creates the writer for <paramref name="writerId"/> (0..K-1). Untimed (connections etc.).</summary>
    ValueTask<ICommitWriter> CreateCommitWriterAsync(int writerId);

    /// <summary>W3 setup, untimed: accounts 0..<paramref name="count"/>-1, each with <paramref name="balance"/>.</summary>
    ValueTask CreateAccountsAsync(int count, long balance);

    /// <summary>W3: creates the writer for <paramref name="writerId"/> (0..K-1). Untimed.</summary>
    ValueTask<IOutboxWriter> CreateOutboxWriterAsync(int writerId);

    /// <summary>W3 log-only form: creates the writer for <paramref name="writerId"/> (0..K-1). Untimed.</summary>
    ValueTask<IOutboxLogWriter> CreateOutboxLogWriterAsync(int writerId);

    /// <summary>W4: reads every record in append order, handing each payload to <paramref name="tally"/>.</summary>
    ValueTask ScanAsync(ScanTally tally);
}

/// <summary>A W2 writer: owned by one runner task, never called concurrently with itself.</summary>
public interface ICommitWriter : IAsyncDisposable
{
    /// <summary>Appends one record and completes once it is durable.</summary>
    ValueTask CommitOneAsync(ReadOnlyMemory<byte> payload);
}

/// <summary>A W3 writer: owned by one runner task, never called concurrently with itself.</summary>
public interface IOutboxWriter : IAsyncDisposable
{
    /// <summary>Runs the order transaction atomically and completes once it is durable.</summary>
    ValueTask CommitOneAsync(OutboxTransaction transaction);
}

/// <summary>A W3 log-only writer: owned by one runner task, never called concurrently with itself.</summary>
public interface IOutboxLogWriter : IAsyncDisposable
{
    /// <summary>Appends the three outbox messages atomically and completes once they are durable.</summary>
    ValueTask CommitOneAsync(OutboxMessages messages);
}

/// <summary>
/// The three messages of one W3 log-only transaction, one per topic of <see cref="OutboxTransaction.Topics"/>
/// (no account update).
/// </summary>
public readonly struct OutboxMessages(ReadOnlyMemory<byte> orderCreated, ReadOnlyMemory<byte> inventoryReserve,
    ReadOnlyMemory<byte> paymentProcess)
{
    /// <summary>The message for <c>order-created</c>.</summary>
    public ReadOnlyMemory<byte> OrderCreated { get; } = orderCreated;

    /// <summary>The message for <c>inventory-reserve</c>.</summary>
    public ReadOnlyMemory<byte> InventoryReserve { get; } = inventoryReserve;

    /// <summary>The message for <c>payment-process</c>.</summary>
    public ReadOnlyMemory<byte> PaymentProcess { get; } = paymentProcess;

    /// <summary>The message for <c>OutboxTransaction.Topics[index]</c>.</summary>
    public ReadOnlyMemory<byte> GetMessage(int index) => index switch
    {
        0 => OrderCreated,
        1 => InventoryReserve,
        2 => PaymentProcess,
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };
}

/// <summary>
/// One W3 order transaction: move <see cref="Amount"/> from account <see cref="From"/> to account
/// <see cref="To"/> and append one message to each of the three <see cref="Topics"/>.
/// </summary>
public readonly struct OutboxTransaction(int from, int to, long amount, OutboxMessages messages)
{
    /// <summary>The outbox topics, in the order their messages are appended.</summary>
    public static readonly string[] Topics = ["order-created", "inventory-reserve", "payment-process"];

    /// <summary>The debited account.</summary>
    public int From { get; } = from;

    /// <summary>The credited account (never equal to <see cref="From"/>).</summary>
    public int To { get; } = to;

    /// <summary>The amount moved, 1..100.</summary>
    public long Amount { get; } = amount;

    /// <summary>The three messages, one per topic of <see cref="Topics"/>.</summary>
    public OutboxMessages Messages { get; } = messages;
}

/// <summary>
/// Receives every payload of a W4 scan and keeps what the runner checks: count, total bytes and the sum
/// of the sequence numbers stored little-endian in each payload's first 8 bytes.
/// </summary>
public sealed class ScanTally
{
    private long _count;
    private long _bytes;
    private long _sequenceSum;

    /// <summary>Records read.</summary>
    public long Count => _count;

    /// <summary>Payload bytes read.</summary>
    public long Bytes => _bytes;

    /// <summary>Sum of the sequence numbers read (wraps silently, like the expected value).</summary>
    public long SequenceSum => _sequenceSum;

    /// <summary>Accounts for one payload. Cheap on purpose: it runs once per record inside the timed scan.</summary>
    public void Add(ReadOnlySpan<byte> payload)
    {
        _count++;
        _bytes += payload.Length;
        if (payload.Length >= sizeof(long))
        {
            _sequenceSum = unchecked(_sequenceSum + BinaryPrimitives.ReadInt64LittleEndian(payload));
        }
    }
}
