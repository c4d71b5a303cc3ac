using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// A power loss at each step of a multi-partition commit: the image holds only what was fsynced (see
/// <see cref="PowerLossFileSystem"/>), not what kill -9 leaves. An acknowledged commit must survive,
/// on every partition.
/// </summary>
public class PowerLossCommitTests
{
    private static readonly TopicPartition[] Targets = [new("a", 0), new("b", 0), new("b", 1)];

    private static LogStore OpenStore(string path, PowerLossFileSystem fs)
    {
        LogStoreOptions options = fs.StoreOptions(DurabilityMode.GroupCommit);
        LogStore store = LogStore.Open(path, options);
        store.CreateTopic("a", 1);
        store.CreateTopic("b", 2);
        return store;
    }

    // Commits T1 over every target; a-0 takes T1's COMMIT marker, but no fsync of a-0 starts after the
    // decision (before any marker is written) until the test releases them.
    private static async Task CommitHoldingTheFirstMarkerAsync(LogStore store, PowerLossFileSystem fs, Producer p)
    {
        await store.FlushAsync();
        store.Coordinator.StepHook = s =>
        {
            if (s == "decided")
            {
                fs.HoldSyncs(path => path.Contains($"{Path.DirectorySeparatorChar}a-0{Path.DirectorySeparatorChar}", StringComparison.Ordinal));
            }
        };
        p.BeginTransaction();
        foreach (TopicPartition tp in Targets)
        {
            await p.ProduceAsync(tp, Msg($"t1-{tp}"));
        }

        await p.CommitTransactionAsync();
        store.Coordinator.StepHook = null;
    }

    [TestCase("prepare", false, false)]
    [TestCase("decided", true, false)]
    [TestCase("marker:2", true, false)]
    [TestCase("completed", true, false)]
    [TestCase("completed", true, true)]
    public async Task A_power_loss_at_each_step_of_a_multi_partition_commit_is_all_or_nothing(string step, bool committed, bool coordinatorLogSynced)
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var fs = new PowerLossFileSystem();
        using (LogStore store = OpenStore(dir.Path, fs))
        {
            await using Producer p = await TransactionalAsync(store, "tx");
            p.BeginTransaction();
            foreach (TopicPartition tp in Targets)
            {
                await p.ProduceAsync(tp, Msg($"first-{tp}"));
            }

            await p.CommitTransactionAsync();
            await store.FlushAsync();

            bool taken = false;
            store.Coordinator.StepHook = s =>
            {
                if (s == step && !taken)
                {
                    taken = true;
                    if (coordinatorLogSynced)
                    {
                        // As another committer's decision fsync would: the completion record becomes
                        // durable while this transaction's markers are still only written.
                        store.GetPartition("__transaction_state", 0).Log.Sync();
                    }

                    fs.CopyDurableImage(dir.Path, image.Path);
                }
            };
            p.BeginTransaction();
            foreach (TopicPartition tp in Targets)
            {
                await p.ProduceAsync(tp, Msg($"second-{tp}"));
            }

            await p.CommitTransactionAsync();
            store.Coordinator.StepHook = null;
            Assert.That(taken, Is.True, $"step {step} was reached");
        }

        using (LogStore recovered = LogStore.Open(image.Path, Options(DurabilityMode.GroupCommit)))
        {
            foreach (TopicPartition tp in Targets)
            {
                LogPartition part = recovered.GetPartition(tp.Topic, tp.Partition);
                await part.FlushAsync();
                string[] expected = committed ? [$"first-{tp}", $"second-{tp}"] : [$"first-{tp}"];
                Assert.That(Values(part, IsolationLevel.ReadCommitted), Is.EqualTo(expected), $"{tp} after a power loss at {step}");
                Assert.That(part.LastStableOffset, Is.EqualTo(part.HighWatermark), $"{tp}: nothing left undecided");
            }
        }
    }

    [Test]
    public async Task The_next_transactions_decision_does_not_make_a_lost_marker_an_abort()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var fs = new PowerLossFileSystem();
        using (LogStore store = OpenStore(dir.Path, fs))
        {
            await using Producer p = await TransactionalAsync(store, "tx");
            try
            {
                await CommitHoldingTheFirstMarkerAsync(store, fs, p);

                // T2 of the same id touches only b: its decision (durable) replaces T1's records at replay.
                store.Coordinator.StepHook = s =>
                {
                    if (s == "decided")
                    {
                        fs.CopyDurableImage(dir.Path, image.Path);
                    }
                };
                p.BeginTransaction();
                await p.ProduceAsync(Targets[1], Msg($"t2-{Targets[1]}"));
                await p.ProduceAsync(Targets[2], Msg($"t2-{Targets[2]}"));
                await p.CommitTransactionAsync();
                store.Coordinator.StepHook = null;
            }
            finally
            {
                fs.ReleaseSyncs();
            }
        }

        using LogStore recovered = LogStore.Open(image.Path, Options(DurabilityMode.GroupCommit));
        Assert.That(recovered.Recovery.Actions, Has.Some.Contains("lost COMMIT marker"));
        LogPartition a = recovered.GetPartition("a", 0);
        await a.FlushAsync();
        Assert.That(Values(a, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { $"t1-{Targets[0]}" }), "the acknowledged T1 survives on a-0");
        foreach (TopicPartition tp in Targets[1..])
        {
            LogPartition part = recovered.GetPartition(tp.Topic, tp.Partition);
            await part.FlushAsync();
            Assert.That(Values(part, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { $"t1-{tp}", $"t2-{tp}" }));
        }
    }

    [Test]
    public async Task An_epoch_bump_after_a_commit_does_not_make_its_lost_marker_an_abort()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var fs = new PowerLossFileSystem();
        using (LogStore store = OpenStore(dir.Path, fs))
        {
            Producer first = await TransactionalAsync(store, "tx");
            try
            {
                await CommitHoldingTheFirstMarkerAsync(store, fs, first);

                // A new instance of the same id: its epoch record is durable before InitTransactions returns.
                await using Producer second = await TransactionalAsync(store, "tx");
                fs.CopyDurableImage(dir.Path, image.Path);
            }
            finally
            {
                fs.ReleaseSyncs();
                await first.DisposeAsync();
            }
        }

        using LogStore recovered = LogStore.Open(image.Path, Options(DurabilityMode.GroupCommit));
        foreach (TopicPartition tp in Targets)
        {
            LogPartition part = recovered.GetPartition(tp.Topic, tp.Partition);
            await part.FlushAsync();
            Assert.That(Values(part, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { $"t1-{tp}" }), $"{tp}: the acknowledged T1 survives");
            Assert.That(part.LastStableOffset, Is.EqualTo(part.HighWatermark));
        }

        // The id still works, with an epoch above both instances'.
        await using Producer again = await TransactionalAsync(recovered, "tx");
        again.BeginTransaction();
        await again.ProduceAsync(Targets[0], Msg("t3"));
        await again.CommitTransactionAsync();
    }
}
