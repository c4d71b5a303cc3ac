using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Storage;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// A group member's plain commit waits for its fsync outside the store's membership lock, and a
/// member waiting to take a partition is woken once a commit of it is acknowledged.
/// </summary>
public sealed class ConsumerGroupCommitWaitTests
{
    /// <summary>Blocks fsyncs of the offsets log while <see cref="Block"/> is set, until released.</summary>
    private sealed class GatedFileSystem : DelegatingFileSystem
    {
        private readonly ManualResetEventSlim _entered = new();
        private readonly ManualResetEventSlim _released = new(true);

        public void Block()
        {
            _entered.Reset();
            _released.Reset();
        }

        public bool WaitForBlocked(TimeSpan timeout) => _entered.Wait(timeout);

        public void Release() => _released.Set();

        protected override IStorageFile WrapFile(string path, IStorageFile file) =>
            path.Contains("__consumer_offsets", StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal) ? new GatedFile(this, file) : file;

        private sealed class GatedFile(GatedFileSystem owner, IStorageFile inner) : DelegatingFile(inner)
        {
            public override void Sync()
            {
                if (!owner._released.IsSet)
                {
                    owner._entered.Set();
                    owner._released.Wait(TimeSpan.FromSeconds(30));
                }

                Inner.Sync();
            }
        }
    }

    private static LogStore Open(TempDirectory dir, GatedFileSystem fs)
    {
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.FileSystem = fs;
        options.PreallocateBytes = 0;
        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 2);
        for (int p = 0; p < 2; p++)
        {
            store.GetPartition("t", p).AppendAsync([Msg($"{p}-0"), Msg($"{p}-1")]).AsTask().GetAwaiter().GetResult(); // durable: readable
        }

        return store;
    }

    [Test]
    public async Task A_members_commit_waiting_for_its_fsync_does_not_stop_other_consumers_joining_or_polling()
    {
        using var dir = new TempDirectory();
        var fs = new GatedFileSystem();
        using LogStore store = Open(dir, fs);
        using Consumer a = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        a.Subscribe("t");
        using Consumer other = store.CreateConsumer(new ConsumerOptions { GroupId = "other" });

        fs.Block();
        Task commit = Task.Run(() => a.Commit().AsTask()); // a leads the fsync of its commit
        try
        {
            Assert.That(fs.WaitForBlocked(Tx.Timeout), Is.True);
            Task join = Task.Run(() => other.Subscribe("t")); // another group altogether
            Assert.That(await Task.WhenAny(join, Task.Delay(TimeSpan.FromSeconds(3))), Is.SameAs(join),
                "a consumer of another group could not subscribe while a member's commit waited for its fsync");
        }
        finally
        {
            fs.Release();
        }

        await commit.WaitAsync(Tx.Timeout);
        Assert.That(other.Assignment, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task A_member_waiting_to_take_a_partition_is_woken_when_the_previous_owners_commit_of_it_is_acknowledged()
    {
        using var dir = new TempDirectory();
        var fs = new GatedFileSystem();
        using LogStore store = Open(dir, fs);
        PartitionLog offsetsLog = store.Groups.Partition.Log;
        long armedAbove = long.MaxValue;
        Action pulse = offsetsLog.HighWatermarkAdvanced!;
        offsetsLog.HighWatermarkAdvanced = () =>
        {
            pulse();
            if (offsetsLog.HighWatermark > Volatile.Read(ref armedAbove))
            {
                // The commit is durable and waiters are woken; it is applied a moment later.
                Volatile.Write(ref armedAbove, long.MaxValue);
                Thread.Sleep(300);
            }
        };

        Task? pendingCommit = null;
        var optionsA = new ConsumerOptions { GroupId = "g" };
        optionsA.PartitionsRevoked = (consumer, _) => pendingCommit = consumer.Commit().AsTask(); // commitAsync
        using Consumer a = store.CreateConsumer(optionsA);
        a.Subscribe("t");
        Assert.That(a.Consume(), Is.Not.Null);
        Assert.That(a.Consume(), Is.Not.Null); // "0-0", "1-0": positions 1 and 1

        var optionsB = new ConsumerOptions { GroupId = "g" };
        using Consumer b = store.CreateConsumer(optionsB);
        b.Subscribe("t"); // its target: t-1, still a's
        using var timeout = new CancellationTokenSource(Tx.Timeout);
        await using IAsyncEnumerator<ConsumeResult> loop = b.ConsumeAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        Task<bool> next = loop.MoveNextAsync().AsTask();

        // Another commit leads an fsync of the offsets log that a's commit then waits behind.
        using Consumer manual = store.CreateConsumer(new ConsumerOptions { GroupId = "other" });
        manual.Assign(new TopicPartition("t", 0));
        fs.Block();
        Task leader = Task.Run(() => manual.Commit().AsTask());
        Assert.That(fs.WaitForBlocked(Tx.Timeout), Is.True);

        a.Consume(); // gives up t-1 after a commit of it that is not acknowledged yet
        Assert.That(pendingCommit, Is.Not.Null);
        Assert.That(pendingCommit!.IsCompleted, Is.False);
        Volatile.Write(ref armedAbove, store.Groups.Partition.LogEndOffset - 1);
        fs.Release();
        await pendingCommit.WaitAsync(Tx.Timeout);
        await leader.WaitAsync(Tx.Timeout);
        Assert.That(a.Committed(new TopicPartition("t", 1)), Is.EqualTo(1));

        Assert.That(await Task.WhenAny(next, Task.Delay(TimeSpan.FromSeconds(5))), Is.SameAs(next),
            "b's loop still waits to take t-1, whose previous owner's commit is acknowledged");
        Assert.That(Text(loop.Current.Value), Is.EqualTo("1-1"));
        timeout.Cancel();
    }
}
