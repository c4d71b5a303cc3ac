using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// A crash at each step of a commit: the directory is copied at that step (what kill -9 leaves) and
/// reopened. The outcome must be all or nothing on every partition, and a commit that reached its
/// durable decision must be complete.
/// </summary>
public class CommitCrashTests
{
    private static readonly TopicPartition[] Targets = [new("a", 0), new("b", 0), new("b", 1)];

    [TestCase("prepare", false)]
    [TestCase("decided", true)]
    [TestCase("marker:1", true)]
    [TestCase("marker:2", true)]
    [TestCase("completed", true)]
    public async Task A_crash_at_each_step_of_a_multi_partition_commit_is_all_or_nothing(string step, bool committed)
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("a", 1);
            store.CreateTopic("b", 2);
            await using Producer p = await TransactionalAsync(store, "tx");

            // A committed transaction before, so the image also shows earlier work survives.
            p.BeginTransaction();
            foreach (TopicPartition tp in Targets)
            {
                await p.ProduceAsync(tp, Msg($"first-{tp}"));
            }

            await p.CommitTransactionAsync();

            bool taken = false;
            store.Coordinator.StepHook = s =>
            {
                if (s == step && !taken)
                {
                    taken = true;
                    CopyImage(dir.Path, image.Path);
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
            Assert.That(recovered.Recovery.CleanShutdown, Is.False);
            foreach (TopicPartition tp in Targets)
            {
                LogPartition part = recovered.GetPartition(tp.Topic, tp.Partition);
                await part.FlushAsync(); // markers written by recovery become visible
                string[] expected = committed ? [$"first-{tp}", $"second-{tp}"] : [$"first-{tp}"];
                Assert.That(Values(part, IsolationLevel.ReadCommitted), Is.EqualTo(expected), $"{tp} after a crash at {step}");
                Assert.That(part.LastStableOffset, Is.EqualTo(part.HighWatermark), $"{tp}: nothing left undecided");
            }

            // The transactional id works again after recovery.
            await using Producer again = await TransactionalAsync(recovered, "tx");
            again.BeginTransaction();
            await again.ProduceAsync(Targets[0], Msg("third"));
            await again.CommitTransactionAsync();
        }
    }

    [Test]
    public async Task A_durable_decision_whose_data_did_not_all_survive_becomes_an_abort_everywhere()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        long lostFrom;
        using (LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("a", 1);
            store.CreateTopic("b", 2);
            await using Producer p = await TransactionalAsync(store, "tx");
            lostFrom = store.GetPartition("b", 1).SizeInBytes;
            store.Coordinator.StepHook = s =>
            {
                if (s == "decided")
                {
                    CopyImage(dir.Path, image.Path);
                }
            };
            p.BeginTransaction();
            foreach (TopicPartition tp in Targets)
            {
                await p.ProduceAsync(tp, Msg("txn"));
            }

            await p.CommitTransactionAsync();
            store.Coordinator.StepHook = null;
        }

        // As if b-1's write never reached the disk (the commit was then never acknowledged).
        string log = Path.Combine(image.Path, "b-1", "00000000000000000000.log");
        using (var f = new FileStream(log, FileMode.Open))
        {
            f.SetLength(lostFrom);
        }

        using LogStore recovered = LogStore.Open(image.Path, Options(DurabilityMode.GroupCommit));
        Assert.That(recovered.Recovery.Actions, Has.Some.Contains("abort (data missing after the crash)"));
        foreach (TopicPartition tp in Targets)
        {
            LogPartition part = recovered.GetPartition(tp.Topic, tp.Partition);
            await part.FlushAsync();
            Assert.That(Values(part, IsolationLevel.ReadCommitted), Is.Empty, $"{tp}: all or nothing");
            Assert.That(part.LastStableOffset, Is.EqualTo(part.HighWatermark));
        }
    }

    [TestCase("prepare", false)]
    [TestCase("decided", true)]
    public async Task A_single_partition_commit_needs_no_coordinator_round_and_is_all_or_nothing(string step, bool committed)
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("a", 1);
            await using Producer p = await TransactionalAsync(store, "tx");
            long txnStateEnd = store.GetPartition("__transaction_state", 0).LogEndOffset;
            store.Coordinator.StepHook = s =>
            {
                if (s == step)
                {
                    CopyImage(dir.Path, image.Path);
                }
            };
            p.BeginTransaction();
            await p.ProduceAsync(Targets[0], [Msg("x"), Msg("y")]);
            await p.CommitTransactionAsync();
            store.Coordinator.StepHook = null;

            // Only the CompleteCommit record was written to the coordinator log, after the decision.
            Assert.That(store.GetPartition("__transaction_state", 0).LogEndOffset, Is.EqualTo(txnStateEnd + 1));
        }

        using LogStore recovered = LogStore.Open(image.Path, Options(DurabilityMode.GroupCommit));
        LogPartition part = recovered.GetPartition("a", 0);
        await part.FlushAsync();
        Assert.That(Values(part, IsolationLevel.ReadCommitted), Is.EqualTo(committed ? new[] { "x", "y" } : Array.Empty<string>()));
        Assert.That(part.LastStableOffset, Is.EqualTo(part.HighWatermark));
    }

    [Test]
    public async Task An_open_transaction_at_a_crash_is_aborted_on_every_partition_it_touched()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("a", 1);
            store.CreateTopic("b", 2);
            Producer p = await TransactionalAsync(store, "tx");
            p.BeginTransaction();
            foreach (TopicPartition tp in Targets)
            {
                await p.ProduceAsync(tp, Msg("open"));
            }

            await store.FlushAsync();
            CopyImage(dir.Path, image.Path);
            await p.AbortTransactionAsync();
        }

        using LogStore recovered = LogStore.Open(image.Path, Options(DurabilityMode.GroupCommit));
        Assert.That(recovered.Recovery.Actions.Count(a => a.Contains("aborted the undecided transaction")), Is.EqualTo(3));
        foreach (TopicPartition tp in Targets)
        {
            LogPartition part = recovered.GetPartition(tp.Topic, tp.Partition);
            await part.FlushAsync();
            Assert.That(Values(part, IsolationLevel.ReadCommitted), Is.Empty);
            Assert.That(Values(part, IsolationLevel.ReadUncommitted), Is.EqualTo(new[] { "open" }));
            Assert.That(part.LastStableOffset, Is.EqualTo(part.HighWatermark));
        }
    }
}
