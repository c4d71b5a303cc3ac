using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Mvcc;

public class MvccBadInputTests
{
    [TestCase(nameof(MvccOptions.SyncInterval))]
    [TestCase(nameof(MvccOptions.CheckpointInterval))]
    [TestCase(nameof(MvccOptions.LockTimeout))]
    public void Intervals_longer_than_a_timer_or_monitor_can_wait_are_rejected_at_open(string option)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None });
        var options = new MvccOptions { SyncMode = LogSyncMode.Periodic };
        typeof(MvccOptions).GetProperty(option)!.SetValue(options, TimeSpan.FromDays(60));

        // Before the fix: the timers threw "dueTime" after recovery, and a LockTimeout over int.MaxValue ms
        // made every wait for a row lock throw ArgumentOutOfRangeException("timeout") from Monitor.Wait.
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
        {
            TransactionEngine engine = store.OpenTransactionEngine(options);
            TransactionalMap<byte[], byte[]> map = engine.OpenMap("m");
            using MvccTransaction holder = engine.BeginTransaction();
            map.Put(holder, [1], [1]);
            Exception? waiterFailure = null;
            var waiter = new Thread(() =>
            {
                try
                {
                    using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
                    map.Put(tx, [1], [2]);
                    tx.Commit();
                }
                catch (Exception ex)
                {
                    waiterFailure = ex;
                }
            });
            waiter.Start();
            Thread.Sleep(200);
            holder.Rollback();
            waiter.Join();
            if (waiterFailure is not null)
            {
                throw waiterFailure;
            }
        });
        Assert.That(e!.ParamName, Is.EqualTo(option));
    }

    [Test]
    public void A_map_refuses_a_transaction_of_another_stores_engine()
    {
        using var dirA = new TempDirectory();
        using var dirB = new TempDirectory();
        var options = new LogStoreOptions { Durability = DurabilityMode.None };
        using (LogStore a = LogStore.Open(dirA.Path, options))
        using (LogStore b = LogStore.Open(dirB.Path, options))
        {
            TransactionEngine engineA = a.OpenTransactionEngine();
            TransactionalMap<byte[], byte[]> mapOfB = b.OpenTransactionEngine().OpenMap("m");
            using MvccTransaction txOfA = engineA.BeginTransaction();

            // Before the fix the write and its commit succeeded: B's rows got a version with A's commit
            // timestamp, and the redo went to A, whose maps gained "m" at the next open.
            var e = Assert.Throws<ArgumentException>(() => mapOfB.Put(txOfA, [1], [1]));
            Assert.That(e!.ParamName, Is.EqualTo("transaction"));
            Assert.Throws<ArgumentException>(() => mapOfB.TryGet(txOfA, [1], out _));
            Assert.Throws<ArgumentException>(() => mapOfB.Scan(txOfA));
            Assert.Throws<ArgumentException>(() => mapOfB.Count(txOfA));
            txOfA.Commit();
        }

        using (LogStore a = LogStore.Open(dirA.Path, options))
        {
            Assert.That(a.OpenTransactionEngine().MapNames(), Does.Not.Contain("m"));
        }
    }

    [Test]
    public async Task A_unified_transaction_refuses_a_producer_of_another_store()
    {
        using var dirA = new TempDirectory();
        using var dirB = new TempDirectory();
        var options = new LogStoreOptions { Durability = DurabilityMode.None };
        using LogStore a = LogStore.Open(dirA.Path, options);
        using LogStore b = LogStore.Open(dirB.Path, options);
        b.OpenTransactionEngine();
        await using TxLog.Producers.Producer producerOfA = await a.CreateProducerAsync(new TxLog.Producers.ProducerOptions { TransactionalId = "x" });
        await producerOfA.InitTransactionsAsync();

        // Before the fix: accepted; the commit failed with TopicNotFoundException('__mvcc_redo') after A's
        // coordinator had written a transactional batch into B's redo, which held B's redo LSO below its end.
        var e = Assert.Throws<ArgumentException>(() => b.BeginTransaction(producerOfA));
        Assert.That(e!.ParamName, Is.EqualTo("producer"));
        Assert.That(producerOfA.InTransaction, Is.False);
        LogPartition redo = b.GetPartition(TransactionEngine.RedoTopic, 0);
        Assert.That(redo.LogEndOffset, Is.Zero);
    }

    [Test]
    public void The_string_serializer_refuses_lone_surrogates_instead_of_merging_keys()
    {
        using var fixture = new EngineFixture();
        TransactionalMap<string, string> map = fixture.Engine.OpenMap("s", Serializers.String, Serializers.String);
        using (MvccTransaction tx = fixture.Engine.BeginTransaction())
        {
            // Before the fix both were encoded as "a\uFFFD": one row, the first value silently overwritten,
            // and Scan returned a key that was never written.
            var e = Assert.Throws<ArgumentException>(() => map.Put(tx, "a\uD800", "first"));
            Assert.That(e!.ParamName, Is.EqualTo("value"));
            Assert.Throws<ArgumentException>(() => map.Put(tx, "a\uD801", "second"));
            Assert.Throws<ArgumentException>(() => map.Put(tx, "k", "v\uDC00"));
            map.Put(tx, "ok \uD83D\uDE00", "fine"); // a surrogate pair is valid
            tx.Commit();
        }

        using MvccTransaction read = fixture.Engine.BeginTransaction();
        Assert.That(map.Scan(read).Select(p => p.Key), Is.EqualTo(new[] { "ok \uD83D\uDE00" }));
    }

    [Test]
    public void A_value_serializer_returning_null_fails_the_put_instead_of_deleting_the_key()
    {
        using var fixture = new EngineFixture();
        TransactionalMap<int, int> map = fixture.Engine.OpenMap("n", Serializers.Int32, new NullForZero());
        using (MvccTransaction tx = fixture.Engine.BeginTransaction())
        {
            map.Put(tx, 1, 7);
            tx.Commit();
        }

        using (MvccTransaction tx = fixture.Engine.BeginTransaction())
        {
            // Before the fix the null went to the engine as a delete: the put succeeded and removed key 1.
            Assert.Throws<InvalidOperationException>(() => map.Put(tx, 1, 0));
            tx.Commit();
        }

        using MvccTransaction read = fixture.Engine.BeginTransaction();
        Assert.That(map.Get(read, 1), Is.EqualTo(7));
    }

    private sealed class NullForZero : ISerializer<int>
    {
        public byte[] Serialize(int value) => value == 0 ? null! : Serializers.Int32.Serialize(value);

        public int Deserialize(ReadOnlySpan<byte> bytes) => Serializers.Int32.Deserialize(bytes);
    }
}
