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
}
