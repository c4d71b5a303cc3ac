using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Unified;

public class RedoTargetWindowTests
{
    // Producer calls are documented as thread-safe (serialised per producer). Another thread commits the
    // producer's transaction and begins the next one while StoreTransaction.CommitAsync encodes its redo
    // batch (between IRedoTarget.StartBatch and AppendBatch, which take the gate separately).
    [Test]
    public async Task A_unified_commit_racing_a_commit_and_begin_on_its_producer_never_leaves_its_redo_undecided()
    {
        using var dir = new TempDirectory();
        int rounds = 0, lost = 0, stuck = 0;
        for (int round = 0; round < 5 && lost == 0 && stuck == 0; round++)
        {
            string path = Path.Combine(dir.Path, "r" + round);
            long committedValue = -1;
            {
                using LogStore store = LogStore.Open(path, Options());
                TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null });
                TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
                await using Producer producer = await TransactionalAsync(store, "p");
                StoreTransaction tx = store.BeginTransaction(producer);
                for (int i = 0; i < 20_000; i++)
                {
                    map.Put(tx.Maps, i, i);
                }

                var racer = new Thread(() =>
                {
                    var until = DateTime.UtcNow.AddSeconds(10);
                    while (DateTime.UtcNow < until)
                    {
                        foreach (var t in store.ListTransactions())
                        {
                            if (t.TransactionalId == "p" && t.Partitions.Any(tp => tp.Topic == TransactionEngine.RedoTopic))
                            {
                                try
                                {
                                    producer.CommitTransactionAsync().GetAwaiter().GetResult();
                                    producer.BeginTransaction();
                                }
                                catch (TxLogException)
                                {
                                }

                                return;
                            }
                        }
                    }
                }) { IsBackground = true };
                racer.Start();
                bool ok;
                try
                {
                    await tx.CommitAsync();
                    ok = true;
                }
                catch (TxLogException)
                {
                    ok = false;
                }

                racer.Join();
                rounds++;
                if (!ok)
                {
                    continue;
                }

                committedValue = 19_999;
                LogPartition redo = store.GetPartition(TransactionEngine.RedoTopic, 0);
                if (redo.ProducerState.FirstUnstableOffset != long.MaxValue && !producer.InTransaction)
                {
                    stuck++;
                }

                if (producer.InTransaction)
                {
                    await producer.AbortTransactionAsync();
                }

                if (redo.ProducerState.FirstUnstableOffset != long.MaxValue)
                {
                    stuck++;
                }
            }

            using LogStore reopened = LogStore.Open(path, Options());
            TransactionEngine e2 = reopened.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null });
            TransactionalMap<int, long> m2 = e2.OpenMap("m", Serializers.Int32, Serializers.Int64);
            using MvccTransaction read = e2.BeginTransaction(TransactionIsolation.ReadCommitted);
            if (committedValue >= 0 && m2.Get(read, 19_999, -1) != committedValue)
            {
                lost++;
            }
        }

        Assert.Multiple(() =>
        {
            Assert.That(stuck, Is.Zero, $"the redo of an acknowledged unified commit stayed in an open transaction ({rounds} rounds)");
            Assert.That(lost, Is.Zero, $"an acknowledged unified commit's map writes were lost at reopen ({rounds} rounds)");
        });
    }
}

public class UnifiedTransactionOwnTransactionTests
{
    // Deterministic counterpart of the race above: another caller of the producer commits the unified
    // transaction's log side and begins a new transaction before the unified commit runs. The unified
    // commit must fail (its redo would otherwise land in the other caller's transaction) and must not
    // abort or otherwise touch that new transaction.
    [Test]
    public async Task A_unified_commit_after_another_caller_ended_its_producer_transaction_fails_and_leaves_the_new_one_alone()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("events");
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null });
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        await using Producer producer = await TransactionalAsync(store, "p");

        StoreTransaction tx = store.BeginTransaction(producer);
        map.Put(tx.Maps, 1, 10);
        await tx.ProduceAsync(new TopicPartition("events", 0), Msg("unified"));

        // The other caller: ends the producer's transaction and starts its own, with a record in it.
        await producer.CommitTransactionAsync();
        producer.BeginTransaction();
        await producer.ProduceAsync(new TopicPartition("events", 0), Msg("other"));

        Assert.ThrowsAsync<InvalidTransactionStateException>(() => tx.CommitAsync());
        Assert.That(producer.InTransaction, Is.True, "the other caller's transaction is still open");
        using (MvccTransaction read = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
        {
            Assert.That(map.Get(read, 1, -1), Is.EqualTo(-1), "the failed unified commit changed no map");
        }

        LogPartition redo = store.GetPartition(TransactionEngine.RedoTopic, 0);
        Assert.That(redo.LogEndOffset, Is.Zero, "no redo was written into the other caller's transaction");

        await producer.CommitTransactionAsync();
        LogPartition events = store.GetPartition("events", 0);
        await events.FlushAsync();
        Assert.That(Values(events, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "unified", "other" }));
    }
}
