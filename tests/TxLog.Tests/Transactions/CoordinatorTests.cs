using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

public class CoordinatorTests
{
    [Test]
    public void The_state_machine_accepts_exactly_the_documented_transitions()
    {
        var allowed = new HashSet<(TransactionState, TransactionState)>
        {
            (TransactionState.Empty, TransactionState.Empty), (TransactionState.CompleteCommit, TransactionState.Empty), (TransactionState.CompleteAbort, TransactionState.Empty),
            (TransactionState.Empty, TransactionState.Ongoing), (TransactionState.Ongoing, TransactionState.Ongoing), (TransactionState.CompleteCommit, TransactionState.Ongoing), (TransactionState.CompleteAbort, TransactionState.Ongoing),
            (TransactionState.Ongoing, TransactionState.PrepareCommit),
            (TransactionState.Ongoing, TransactionState.PrepareAbort), (TransactionState.PrepareEpochFence, TransactionState.PrepareAbort),
            (TransactionState.PrepareCommit, TransactionState.CompleteCommit),
            (TransactionState.PrepareAbort, TransactionState.CompleteAbort),
            (TransactionState.Ongoing, TransactionState.PrepareEpochFence),
            (TransactionState.Empty, TransactionState.Dead), (TransactionState.CompleteCommit, TransactionState.Dead), (TransactionState.CompleteAbort, TransactionState.Dead),
        };
        foreach (TransactionState from in Enum.GetValues<TransactionState>())
        {
            foreach (TransactionState to in Enum.GetValues<TransactionState>())
            {
                Assert.That(TransactionStateRules.IsValidTransition(from, to), Is.EqualTo(allowed.Contains((from, to))), $"{from} -> {to}");
            }
        }

        var m = new TransactionMetadata("x", 1, 0, 1000);
        Assert.Throws<InvalidOperationException>(() => m.TransitionTo(TransactionState.CompleteCommit), "Empty -> CompleteCommit skips the decision");
        Assert.That(m.State, Is.EqualTo(TransactionState.Empty), "a rejected transition changes nothing");
    }

    [Test]
    public async Task A_repeated_marker_is_harmless_and_a_contradicting_one_is_an_error()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.ProduceAsync(new TopicPartition("t", 0), Msg("x"));
        await producer.CommitTransactionAsync();
        long end = p.LogEndOffset;

        Assert.That(Marker(store, p, producer, ControlRecordType.Commit), Is.Null, "the repeated COMMIT was recognised and not written");
        Assert.That(p.LogEndOffset, Is.EqualTo(end));
        Assert.Throws<InvalidTransactionStateException>(() => Marker(store, p, producer, ControlRecordType.Abort));
        Assert.That(p.LogEndOffset, Is.EqualTo(end));
        Assert.That(Values(p, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "x" }));
    }

    private static AppendResult? Marker(LogStore store, LogPartition p, Producer producer, ControlRecordType type)
    {
        RecordBatchBuilder builder = store.RentBuilder();
        try
        {
            builder.Reset(ControlRecord.BatchAttributes, producer.ProducerId, producer.Epoch, -1);
            ControlRecord.AddTo(builder, type, 0, 1000);
            return p.AppendProducerBatch(builder, new ProducerBatchHeader(producer.ProducerId, producer.Epoch, -1, 0, true, true, type, 0, 1000));
        }
        finally
        {
            store.ReturnBuilder(builder);
        }
    }

    [Test]
    public async Task The_coordinator_log_is_restated_at_open_so_replay_stays_short()
    {
        using var dir = new TempDirectory();
        var options = Options();
        options.SegmentBytes = 4096;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("t");
            await using Producer producer = await TransactionalAsync(store, "busy");
            for (int i = 0; i < 600; i++)
            {
                producer.BeginTransaction();
                await producer.ProduceAsync(new TopicPartition("t", 0), Msg($"v{i}"));
                await producer.ProduceAsync(new TopicPartition("t", 0), Msg($"w{i}"));
                await producer.CommitTransactionAsync();
            }

            Assert.That(store.GetPartition(TransactionCoordinator.TopicName, 0).LogEndOffset, Is.GreaterThan(600), "a record per commit");
        }

        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            LogPartition state = store.GetPartition(TransactionCoordinator.TopicName, 0);
            Assert.That(state.LogEndOffset - state.LogStartOffset, Is.LessThan(20), "only the restated state is left to replay");
            TransactionDescription busy = store.ListTransactions().Single();
            Assert.That(busy.State, Is.EqualTo(TransactionState.CompleteCommit));
            await using Producer again = await TransactionalAsync(store, "busy");
            Assert.That(again.ProducerId, Is.EqualTo(busy.ProducerId));
            Assert.That(again.Epoch, Is.GreaterThan(busy.Epoch));
        }
    }

    [TestCase("__transaction_state-0")]
    [TestCase("b-0")]
    public async Task A_failed_fsync_at_the_decision_fails_the_commit_and_reopening_shows_all_or_nothing(string failingPartition)
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, FailingSyncOptions(failingPartition, out FaultyFileSystem fs)))
        {
            await using Producer p = await BeginOverAAndBAsync(store);
            fs.FailSync();
            Assert.ThrowsAsync<LogWriteException>(() => p.CommitTransactionAsync(), "the commit is not acknowledged");
        }

        using LogStore reopened = LogStore.Open(dir.Path, Options());
        List<string> a = Values(reopened.GetPartition("a", 0), IsolationLevel.ReadCommitted);
        List<string> b = Values(reopened.GetPartition("b", 0), IsolationLevel.ReadCommitted);
        Assert.That(a.Count, Is.EqualTo(b.Count), "all or nothing across the two partitions");
        Assert.That(reopened.GetPartition("a", 0).LastStableOffset, Is.EqualTo(reopened.GetPartition("a", 0).HighWatermark));
    }

    [Test]
    public async Task A_commit_that_failed_before_its_decision_is_never_completed_in_memory_and_says_why()
    {
        // Regression (two bugs): (1) the transaction stayed claimed with a misleading "committing right
        // now; retry" for every later InitTransactions; (2) the first fix released the claim, and a
        // successor's InitTransactions then completed the PrepareCommit: COMMIT on the healthy partition
        // while the failed partition's data may be lost — a half-visible transaction.
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, FailingSyncOptions("b-0", out FaultyFileSystem fs)))
        {
            await using Producer p = await BeginOverAAndBAsync(store);
            fs.FailSync();
            Assert.ThrowsAsync<LogWriteException>(() => p.CommitTransactionAsync());

            await using Producer successor = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "tx" });
            var e = Assert.ThrowsAsync<InvalidTransactionStateException>(async () => await successor.InitTransactionsAsync());
            Assert.That(e!.Message, Does.Contain("reopen"));
            Assert.That(e.InnerException, Is.InstanceOf<LogWriteException>(), "the cause is named");
            LogPartition a = store.GetPartition("a", 0);
            Assert.That(Values(a, IsolationLevel.ReadCommitted), Is.Empty, "nothing of it became visible on the healthy partition");
            Assert.That(store.Coordinator.AbortExpiredTransactions(), Is.Zero);
        }

        using LogStore reopened = LogStore.Open(dir.Path, Options());
        List<string> ra = Values(reopened.GetPartition("a", 0), IsolationLevel.ReadCommitted);
        List<string> rb = Values(reopened.GetPartition("b", 0), IsolationLevel.ReadCommitted);
        Assert.That(ra.Count, Is.EqualTo(rb.Count), "recovery decides all or nothing");
        await using Producer after = await TransactionalAsync(reopened, "tx"); // usable again after the reopen
        Assert.That(after.Epoch, Is.GreaterThan((short)0));
    }

    // Group commit without preallocation, with a file system whose FailSync targets one partition's .log files.
    private static LogStoreOptions FailingSyncOptions(string partitionDirectory, out FaultyFileSystem fs)
    {
        fs = new FaultyFileSystem
        {
            Targets = path => path.Contains(Path.DirectorySeparatorChar + partitionDirectory + Path.DirectorySeparatorChar, StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal),
        };
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.FileSystem = fs;
        options.PreallocateBytes = 0;
        return options;
    }

    // Topics a and b, and a producer "tx" with an open transaction holding x on a-0 and y on b-0.
    private static async Task<Producer> BeginOverAAndBAsync(LogStore store)
    {
        store.CreateTopic("a");
        store.CreateTopic("b");
        Producer p = await TransactionalAsync(store, "tx");
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("a", 0), Msg("x"));
        await p.ProduceAsync(new TopicPartition("b", 0), Msg("y"));
        return p;
    }
}
