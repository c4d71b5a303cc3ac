using TxLog.Consuming;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>Lock order between the group membership and the store's topic table.</summary>
public sealed class ConsumerGroupLockOrderTests
{
    // Regression: the first OpenTransactionEngine creates __mvcc_redo through EnsureInternalTopic, which
    // held the topics lock around CreateTopic, and CreateTopic tells the membership (TopicChanged takes
    // the membership lock) after its own, nested, release of the topics lock: topics lock -> membership
    // lock. Join (and Leave, TopicChanged, evictions) count partitions under the membership lock:
    // membership lock -> topics lock. A member joining while the engine opened deadlocked both threads
    // (and every later caller of either lock). Here the joining side holds the membership lock while the
    // engine creates its topic, then counts partitions as Join does (a nested Join: the lock is reentrant).
    [Test]
    public void Opening_the_transaction_engine_while_a_member_joins_does_not_deadlock()
    {
        var dir = new TempDirectory();
        LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        ConsumerGroupMembership membership = store.Membership;
        ConsumerGroupMembership.Member member = membership.Join("g", ["t"], long.MaxValue, store.NowMs());
        string redoDirectory = Path.Combine(dir.Path, TxLog.Mvcc.TransactionEngine.RedoTopic + "-0");
        Task? open = null;
        Task joining = Task.Run(() => membership.RunIfOwner(member, [], () =>
        {
            // Under the membership lock, as in Join.
            open = Task.Run(() => store.OpenTransactionEngine());
            SpinWait.SpinUntil(() => Directory.Exists(redoDirectory), Tx.Timeout);
            Thread.Sleep(200); // let the engine's open reach TopicChanged
            membership.Join("g2", ["t"], long.MaxValue, store.NowMs()); // counts partitions: takes the topics lock
        }));

        bool finished = joining.Wait(TimeSpan.FromSeconds(10)) && open!.Wait(TimeSpan.FromSeconds(10));
        Assert.That(finished, Is.True, "deadlock: the engine's open holds the topics lock and waits for the membership lock, Join the reverse");
        Assert.That(store.TopicExists(TxLog.Mvcc.TransactionEngine.RedoTopic), Is.True);
        store.Dispose(); // only when nothing is deadlocked (it takes the topics lock)
        dir.Dispose();
    }

    // The same deadlock without any hook: members joining and leaving while the engine opens (it hung
    // at the first iteration before the fix).
    [Test]
    public void Members_joining_and_leaving_while_the_transaction_engine_opens_do_not_deadlock()
    {
        for (int iteration = 0; iteration < 20; iteration++)
        {
            var dir = new TempDirectory();
            LogStore store = LogStore.Open(dir.Path, Options());
            store.CreateTopic("t", 4);
            using var stop = new CancellationTokenSource();
            Task[] churn = Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    using Consumer c = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
                    c.Subscribe("t");
                    c.Unsubscribe();
                }
            })).ToArray();
            Thread.Sleep(2);
            Task open = Task.Run(() => store.OpenTransactionEngine());
            bool finished = open.Wait(TimeSpan.FromSeconds(10));
            stop.Cancel();
            finished &= Task.WaitAll(churn, TimeSpan.FromSeconds(10));
            Assert.That(finished, Is.True, $"deadlock at iteration {iteration}");
            store.Dispose();
            dir.Dispose();
        }
    }
}
