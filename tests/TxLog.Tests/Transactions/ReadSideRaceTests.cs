using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Storage;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>Calls <see cref="AfterMove"/> after each rename (the atomic-write step of snapshots).</summary>
internal sealed class HookFileSystem : DelegatingFileSystem
{
    public Action<string>? AfterMove { get; set; }

    public override void MoveFile(string source, string destination)
    {
        Inner.MoveFile(source, destination);
        AfterMove?.Invoke(destination);
    }
}

/// <summary>
/// Regressions (found by a bug hunt with probe tests): read-committed readers must never return records
/// of open or aborted transactions, also in the instants while a batch or a marker is being applied.
/// </summary>
public class ReadSideRaceTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    private static bool IsSnapshotOfT0(string path) =>
        path.EndsWith(".snapshot", StringComparison.Ordinal) && Path.GetFileName(Path.GetDirectoryName(path)) == "t-0";

    // Race #1: between Log.Append (HW moves in mode None) and ProducerState.Update (FirstUnstableOffset
    // learns of the new transaction), a read-committed reader sees the open transaction's first batch.
    // The roll's producer snapshot (written between the two) makes the window wide; the hook reads in it.
    [Test]
    public async Task A_read_committed_reader_never_sees_an_open_transaction_whose_first_batch_is_still_being_applied()
    {
        using var dir = new TempDirectory();
        var fs = new HookFileSystem();
        LogStoreOptions options = Options();
        options.FileSystem = fs;
        options.SegmentBytes = 100;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append(Msg("plain"));

        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadCommitted });
        consumer.Assign(T0);
        Assert.That(Text(consumer.Consume()!.Value), Is.EqualTo("plain"));

        List<string>? seenInWindow = null;
        long lsoInWindow = -1;
        ConsumeResult? consumedInWindow = null;
        fs.AfterMove = path =>
        {
            if (IsSnapshotOfT0(path) && seenInWindow is null)
            {
                lsoInWindow = p.LastStableOffset;
                seenInWindow = Values(p, IsolationLevel.ReadCommitted);
                consumedInWindow = consumer.Consume();
            }
        };
        await producer.ProduceAsync(T0, Msg("txn-data"));
        fs.AfterMove = null;
        long lsoAfter = p.LastStableOffset;
        await producer.AbortTransactionAsync();

        Assert.That(Values(p, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "plain" }), "after the abort");
        Assert.Multiple(() =>
        {
            Assert.That(seenInWindow, Is.EqualTo(new[] { "plain" }), "a read-committed reader saw a record of an open (later aborted) transaction");
            Assert.That(consumedInWindow, Is.Null, "a read-committed consumer returned a record of an open (later aborted) transaction");
            Assert.That(lsoInWindow, Is.LessThanOrEqualTo(lsoAfter), "the LSO went backwards");
        });
    }

    // Same race, GroupCommit mode: another appender's fsync (here a flush started from another thread
    // during the window) advances the HW over the new transactional batch before its producer state exists.
    [Test]
    public async Task A_concurrent_fsync_in_that_instant_does_not_expose_the_open_transaction_either()
    {
        using var dir = new TempDirectory();
        var fs = new HookFileSystem();
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.FileSystem = fs;
        options.SegmentBytes = 100;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        await p.AppendAsync(Msg("plain"));

        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        List<string>? seenInWindow = null;
        fs.AfterMove = path =>
        {
            if (IsSnapshotOfT0(path) && seenInWindow is null)
            {
                Task.Run(async () => await p.FlushAsync()).Wait();
                seenInWindow = Values(p, IsolationLevel.ReadCommitted);
            }
        };
        await producer.ProduceAsync(T0, Msg("txn-data"));
        fs.AfterMove = null;
        await producer.AbortTransactionAsync();
        Assert.That(seenInWindow, Is.EqualTo(new[] { "plain" }), "a read-committed reader saw a record of an open (later aborted) transaction");
    }

    private static AppendResult? Marker(LogStore store, LogPartition p, long pid, short epoch, ControlRecordType type)
    {
        RecordBatchBuilder b = store.RentBuilder();
        try
        {
            b.Reset(ControlRecord.BatchAttributes, pid, epoch, RecordBatchLayout.NoSequence);
            ControlRecord.AddTo(b, type, coordinatorEpoch: 0, store.NowMs());
            var h = new ProducerBatchHeader(pid, epoch, RecordBatchLayout.NoSequence, 0, true, true, type, 0, b.MaxTimestamp);
            return p.AppendProducerBatch(b, h);
        }
        finally
        {
            store.ReturnBuilder(b);
        }
    }

    // Race #2: an ABORT marker publishes the new FirstUnstableOffset (ProducerStateManager.Update) before
    // it adds the aborted transaction to the list; a read-committed reader in between sees aborted data.
    // The data batch is fully appended (its state updated) before the reader looks, so race #1 is excluded.
    [Test]
    public void A_following_read_committed_reader_never_sees_aborted_data_while_the_abort_marker_is_applied()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        const long pid = 4242;
        const int rounds = 20_000; // the race leaked ~1% of rounds before the fix
        int go = -1, done = -1;
        long dataOffset = -1;
        var leaked = new List<long>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        Thread reader = new(() =>
        {
            using LogReader r = p.OpenReader(0, IsolationLevel.ReadCommitted);
            for (int i = 0; i < rounds; i++)
            {
                var spin = new SpinWait();
                while (Volatile.Read(ref go) < i)
                {
                    if (cts.IsCancellationRequested)
                    {
                        return;
                    }

                    spin.SpinOnce(-1);
                }

                long data = Volatile.Read(ref dataOffset);
                while (r.Position < data + 2 && !cts.IsCancellationRequested)
                {
                    if (r.TryRead(out Record rec))
                    {
                        lock (leaked)
                        {
                            leaked.Add(rec.Offset);
                        }
                    }
                }

                Volatile.Write(ref done, i);
            }
        }) { IsBackground = true };
        reader.Start();

        for (int i = 0; i < rounds; i++)
        {
            AppendResult data = AppendRaw(store, p, pid, 0, i, true, $"aborted-{i}")!.Value;
            Volatile.Write(ref dataOffset, data.BaseOffset);
            Volatile.Write(ref go, i);
            Marker(store, p, pid, 0, ControlRecordType.Abort);
            var spin = new SpinWait();
            while (Volatile.Read(ref done) < i && !cts.IsCancellationRequested)
            {
                spin.SpinOnce(-1);
            }
        }

        reader.Join();
        Assert.That(cts.IsCancellationRequested, Is.False, "timed out");
        Assert.That(Values(p, IsolationLevel.ReadCommitted), Is.Empty, "a fresh reader filters them all");
        Assert.That(leaked, Is.Empty, "a following read-committed reader returned records of aborted transactions");
    }
}
