using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Unified;

/// <summary>One transaction over maps, partitions and offsets (issue 5's first slice).</summary>
public class UnifiedTransactionTests
{
    private static readonly TopicPartition Events = new("events", 0);
    private static readonly TopicPartition Audit = new("audit", 0);

    private const long Absent = long.MinValue;

    private sealed class Setup : IDisposable
    {
        public Setup(string path, DurabilityMode mode = DurabilityMode.GroupCommit)
        {
            Store = LogStore.Open(path, Options(mode));
            if (!Store.TopicExists("events"))
            {
                Store.CreateTopic("events");
                Store.CreateTopic("audit");
            }

            Engine = Store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, LockTimeout = TimeSpan.FromMilliseconds(100) });
            Balances = Engine.OpenMap("balances", Serializers.Int32, Serializers.Int64);
        }

        public LogStore Store { get; }

        public TransactionEngine Engine { get; }

        public TransactionalMap<int, long> Balances { get; }

        public long Balance(int account)
        {
            using MvccTransaction tx = Engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            return Balances.Get(tx, account, Absent);
        }

        public List<string> Committed(TopicPartition tp) => Values(Store.GetPartition(tp.Topic, tp.Partition), IsolationLevel.ReadCommitted);

        public void Dispose() => Store.Dispose();
    }

    private static async Task Transfer(Setup s, Producer producer, int from, int to, long amount, bool commit)
    {
        StoreTransaction tx = s.Store.BeginTransaction(producer);
        s.Balances.Put(tx.Maps, from, s.Balances.Get(tx.Maps, from, 0) - amount);
        s.Balances.Put(tx.Maps, to, s.Balances.Get(tx.Maps, to, 0) + amount);
        await tx.ProduceAsync(Events, Msg($"transfer {from}->{to} {amount}"));
        await tx.ProduceAsync(Audit, Msg($"audit {amount}"));
        if (commit)
        {
            await tx.CommitAsync();
        }
        else
        {
            await tx.AbortAsync();
        }
    }

    [Test]
    public async Task Maps_records_and_offsets_commit_together()
    {
        using var dir = new TempDirectory();
        using var s = new Setup(dir.Path);
        await using Producer producer = await TransactionalAsync(s.Store, "bank");
        StoreTransaction tx = s.Store.BeginTransaction(producer);
        s.Balances.Put(tx.Maps, 1, 100);
        await tx.ProduceAsync(Events, Msg("opened 1"));
        await tx.SendOffsetsAsync([new TopicPartitionOffset(new TopicPartition("input", 0), 7)], "g");
        Assert.That(s.Balance(1), Is.EqualTo(Absent), "not visible before commit");
        Assert.That(s.Committed(Events), Is.Empty);
        await tx.CommitAsync();

        Assert.That(s.Balance(1), Is.EqualTo(100));
        Assert.That(SpinWait.SpinUntil(() => s.Committed(Events).Count == 1, TxLog.Tests.Transactions.Tx.Timeout), Is.True);
        Assert.That(s.Store.Groups.Committed("g", new TopicPartition("input", 0)), Is.EqualTo(7));
    }

    [Test]
    public async Task An_abort_undoes_maps_records_and_offsets_and_releases_the_rows()
    {
        using var dir = new TempDirectory();
        using var s = new Setup(dir.Path);
        await using Producer producer = await TransactionalAsync(s.Store, "bank");
        await Transfer(s, producer, 1, 2, 10, commit: true);
        await Transfer(s, producer, 1, 2, 500, commit: false);
        Assert.That((s.Balance(1), s.Balance(2)), Is.EqualTo((-10L, 10L)));
        Assert.That(SpinWait.SpinUntil(() => s.Committed(Events).Count > 0, TxLog.Tests.Transactions.Tx.Timeout), Is.True, "the commit becomes visible shortly after it is acknowledged");
        Assert.That(s.Committed(Events), Is.EqualTo(new[] { "transfer 1->2 10" }));

        using MvccTransaction other = s.Engine.BeginTransaction(TransactionIsolation.ReadCommitted);
        s.Balances.Put(other, 1, 0); // would time out if the aborted transaction still held the row
        other.Commit();
    }

    [Test]
    public async Task A_fenced_producer_cannot_commit_and_its_map_writes_are_undone()
    {
        using var dir = new TempDirectory();
        using var s = new Setup(dir.Path);
        Producer zombie = await TransactionalAsync(s.Store, "bank");
        StoreTransaction tx = s.Store.BeginTransaction(zombie);
        s.Balances.Put(tx.Maps, 5, 55);
        await tx.ProduceAsync(Events, Msg("zombie"));
        await using Producer fresh = await TransactionalAsync(s.Store, "bank");
        Assert.ThrowsAsync<ProducerFencedException>(() => tx.CommitAsync());
        Assert.That(s.Balance(5), Is.EqualTo(Absent));
        Assert.That(s.Committed(Events), Is.Empty);
        await Transfer(s, fresh, 5, 6, 1, commit: true);
        Assert.That((s.Balance(5), s.Balance(6)), Is.EqualTo((-1L, 1L)), "only the fresh producer's transfer");
    }

    [TestCase("prepare", false)]
    [TestCase("decided", true)]
    [TestCase("marker:2", true)]
    [TestCase("completed", true)]
    public async Task After_a_crash_at_any_step_state_and_records_are_both_there_or_both_absent(string step, bool committed)
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        using (var s = new Setup(dir.Path))
        {
            await using Producer producer = await TransactionalAsync(s.Store, "bank");
            await Transfer(s, producer, 1, 2, 10, commit: true);
            s.Store.Coordinator.StepHook = name =>
            {
                if (name == step)
                {
                    TestRecords.CopyImage(dir.Path, image.Path);
                }
            };
            await Transfer(s, producer, 1, 2, 5, commit: true);
            s.Store.Coordinator.StepHook = null;
        }

        using var recovered = new Setup(image.Path);
        Assert.That(recovered.Engine.RecoverySummary, Does.Contain("replayed"));
        long expectedFrom = committed ? -15 : -10;
        Assert.That((recovered.Balance(1), recovered.Balance(2)), Is.EqualTo((expectedFrom, -expectedFrom)), $"maps after a crash at {step}");
        string[] events = committed ? ["transfer 1->2 10", "transfer 1->2 5"] : ["transfer 1->2 10"];
        Assert.That(recovered.Committed(Events), Is.EqualTo(events), $"records after a crash at {step}");
        Assert.That(recovered.Committed(Audit), Has.Count.EqualTo(events.Length));
    }

    [Test]
    public async Task Committed_state_survives_a_clean_reopen_through_the_transactional_redo()
    {
        using var dir = new TempDirectory();
        using (var s = new Setup(dir.Path))
        {
            await using Producer producer = await TransactionalAsync(s.Store, "bank");
            for (int i = 0; i < 20; i++)
            {
                await Transfer(s, producer, i % 4, (i + 1) % 4, i, commit: i % 3 != 0);
            }

            using MvccTransaction plain = s.Engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            s.Balances.Put(plain, 100, 1);
            plain.Commit(); // a plain engine commit interleaves with the unified ones
        }

        using var reopened = new Setup(dir.Path);
        long total = 0;
        for (int a = 0; a < 4; a++)
        {
            total += reopened.Balance(a);
        }

        Assert.That(total, Is.Zero, "transfers only move money");
        Assert.That(reopened.Balance(100), Is.EqualTo(1));
        int committedTransfers = Enumerable.Range(0, 20).Count(i => i % 3 != 0);
        Assert.That(reopened.Committed(Events), Has.Count.EqualTo(committedTransfers));
        Assert.That(reopened.Balance(1), Is.EqualTo(Enumerable.Range(0, 20).Where(i => i % 3 != 0).Sum(i => (i % 4 == 1 ? -i : 0) + ((i + 1) % 4 == 1 ? i : 0))));
    }

    [Test]
    public async Task A_store_snapshot_is_one_instant_of_maps_and_partitions()
    {
        using var dir = new TempDirectory();
        using var s = new Setup(dir.Path);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        var writers = new List<Task>();
        for (int w = 0; w < 3; w++)
        {
            int writer = w;
            writers.Add(Task.Factory.StartNew(async () =>
            {
                await using Producer producer = await TransactionalAsync(s.Store, $"snap{writer}");
                while (!stop.IsCancellationRequested)
                {
                    StoreTransaction tx = s.Store.BeginTransaction(producer, TransactionIsolation.ReadCommitted);
                    try
                    {
                        s.Balances.Put(tx.Maps, writer, s.Balances.Get(tx.Maps, writer, 0) + 1);
                    }
                    catch (WriteConflictException)
                    {
                        await tx.AbortAsync();
                        continue;
                    }

                    await tx.ProduceAsync(Events, Msg($"w{writer}"));
                    await tx.ProduceAsync(Audit, Msg($"w{writer}"));
                    await tx.CommitAsync();
                }
            }, TaskCreationOptions.LongRunning).Unwrap());
        }

        int snapshots = 0, nonEmpty = 0;
        while (!stop.IsCancellationRequested)
        {
            using StoreSnapshot snapshot = s.Store.CaptureSnapshot(Events, Audit);
            long inMaps = 0;
            for (int w = 0; w < 3; w++)
            {
                inMaps += s.Balances.Get(snapshot.Maps, w, 0);
            }

            long[] inPartitions = new long[2];
            int i = 0;
            foreach (TopicPartition tp in new[] { Events, Audit })
            {
                LogPartition p = s.Store.GetPartition(tp.Topic, tp.Partition);
                using LogReader reader = p.OpenReader(p.LogStartOffset, snapshot.Cut);
                while (reader.TryRead(out TxLog.Records.Record _))
                {
                    inPartitions[i]++;
                }

                i++;
            }

            Assert.That((inPartitions[0], inPartitions[1]), Is.EqualTo((inMaps, inMaps)), $"snapshot {snapshots}: maps and partitions disagree");
            nonEmpty += inMaps > 0 ? 1 : 0;
            snapshots++;
        }

        await Task.WhenAll(writers);
        Assert.That(snapshots, Is.GreaterThan(10));
        Assert.That(nonEmpty, Is.GreaterThan(0));
    }
}
