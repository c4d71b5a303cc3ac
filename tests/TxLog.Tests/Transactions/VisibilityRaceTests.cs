using System.Collections.Concurrent;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>What read-committed readers, consistent cuts, watermarks and group offsets show while transactions end concurrently.</summary>
public class VisibilityRaceTests
{
    private static readonly TopicPartition A = new("t", 0);
    private static readonly TopicPartition B = new("t", 1);
    private const int PerPartition = 2;

    private static async Task WriterLoop(LogStore store, string id, int seed, ConcurrentDictionary<string, bool> outcome, CancellationToken stop)
    {
        await using Producer producer = await TransactionalAsync(store, id);
        var rnd = new Random(seed);
        int n = 0;
        while (!stop.IsCancellationRequested)
        {
            string txn = $"{id}-{n++}";
            producer.BeginTransaction();
            TopicPartition first = rnd.Next(2) == 0 ? A : B;
            TopicPartition second = first == A ? B : A;
            for (int i = 0; i < PerPartition; i++)
            {
                await producer.ProduceAsync(first, Msg(txn));
                await producer.ProduceAsync(second, Msg(txn));
                if (rnd.Next(3) == 0)
                {
                    await Task.Yield();
                }
            }

            bool commit = rnd.Next(3) != 0;
            outcome[txn] = commit;
            if (commit)
            {
                await producer.CommitTransactionAsync();
            }
            else
            {
                await producer.AbortTransactionAsync();
            }
        }
    }

    private static void ReadTo(LogPartition p, long from, long to, Dictionary<string, int> counts, ConsistentCut cut)
    {
        if (from >= to)
        {
            return;
        }

        using LogReader r = p.OpenReader(from, cut);
        while (r.TryRead(out Record rec))
        {
            string v = Text(rec.Value);
            counts[v] = counts.GetValueOrDefault(v) + 1;
        }
    }

    [TestCase(DurabilityMode.None)]
    [TestCase(DurabilityMode.GroupCommit)]
    public async Task A_consistent_cut_shows_each_multi_partition_transaction_whole_on_all_partitions_or_nowhere(DurabilityMode mode)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(mode));
        store.CreateTopic("t", 2);
        LogPartition pa = store.GetPartition("t", 0), pb = store.GetPartition("t", 1);
        var outcome = new ConcurrentDictionary<string, bool>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var writers = new List<Task>();
        for (int w = 0; w < 4; w++)
        {
            string id = "w" + w;
            int seed = w;
            writers.Add(Task.Run(() => WriterLoop(store, id, seed, outcome, stop.Token)));
        }

        var countsA = new Dictionary<string, int>();
        var countsB = new Dictionary<string, int>();
        long endA = 0, endB = 0;
        string? problem = null;
        int cuts = 0;
        var reader = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested && problem is null)
            {
                ConsistentCut cut = store.CaptureCut(A, B);
                long ea = cut.EndOffset(A), eb = cut.EndOffset(B);
                ReadTo(pa, endA, ea, countsA, cut);
                ReadTo(pb, endB, eb, countsB, cut);
                endA = Math.Max(endA, ea);
                endB = Math.Max(endB, eb);
                cuts++;
                foreach (string k in countsA.Keys.Union(countsB.Keys))
                {
                    int a = countsA.GetValueOrDefault(k), b = countsB.GetValueOrDefault(k);
                    if (a != PerPartition || b != PerPartition)
                    {
                        problem = $"cut {cuts} (A<{ea}, B<{eb}): txn {k} has {a} records on A and {b} on B";
                        break;
                    }
                }
            }
        });

        await reader;
        await Task.WhenAll(writers);
        Assert.That(problem, Is.Null);
        var seenAborted = countsA.Keys.Union(countsB.Keys).Where(k => outcome.TryGetValue(k, out bool c) && !c).ToList();
        Assert.That(seenAborted, Is.Empty, "aborted transactions seen");
        TestContext.Out.WriteLine($"cuts {cuts}, txns {outcome.Count}, seen {countsA.Count}");
    }

    [TestCase(DurabilityMode.None)]
    [TestCase(DurabilityMode.GroupCommit)]
    public async Task A_read_committed_consumer_never_returns_aborted_records_and_returns_committed_ones_whole(DurabilityMode mode)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(mode));
        store.CreateTopic("t", 2);
        var outcome = new ConcurrentDictionary<string, bool>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var writers = new List<Task>();
        for (int w = 0; w < 4; w++)
        {
            string id = "w" + w;
            int seed = 100 + w;
            writers.Add(Task.Run(() => WriterLoop(store, id, seed, outcome, stop.Token)));
        }

        var consumers = new List<Task<(Dictionary<string, int>, string?)>>();
        for (int c = 0; c < 2; c++)
        {
            consumers.Add(Task.Run(() =>
            {
                using Consumer consumer = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadCommitted });
                consumer.Assign(A, B);
                var counts = new Dictionary<string, int>();
                string? bad = null;
                while (!stop.IsCancellationRequested)
                {
                    ConsumeResult? r = consumer.Consume();
                    if (r is null)
                    {
                        Thread.Yield();
                        continue;
                    }

                    string v = Text(r.Value);
                    counts[v] = counts.GetValueOrDefault(v) + 1;
                    if (outcome.TryGetValue(v, out bool committed) && !committed)
                    {
                        bad ??= $"returned {v} at {r.TopicPartition}@{r.Offset}, which aborted";
                    }
                }

                return (counts, bad);
            }));
        }

        await Task.WhenAll(writers);
        foreach (var t in consumers)
        {
            (Dictionary<string, int> counts, string? bad) = await t;
            Assert.That(bad, Is.Null);
            var aborted = counts.Keys.Where(k => !outcome[k]).ToList();
            Assert.That(aborted, Is.Empty, "aborted transactions returned");
        }
    }

    // A transaction's consumer offsets are one of its partitions (__consumer_offsets), so they should
    // become visible with its records, at the release of its visibility hold. The group coordinator
    // applies them when the COMMIT marker is appended instead: while the records are still held (an
    // earlier open transaction on the output partition), the group already shows the new offset.
    [Test]
    public async Task Offsets_sent_to_a_held_transaction_are_not_committed_before_its_records_are_visible()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("in");
        store.CreateTopic("out");
        var input = new TopicPartition("in", 0);
        var output = new TopicPartition("out", 0);
        LogPartition outP = store.GetPartition("out", 0);

        await using Producer blocker = await TransactionalAsync(store, "blocker");
        blocker.BeginTransaction();
        await blocker.ProduceAsync(output, Msg("open"));

        await using Producer t = await TransactionalAsync(store, "t");
        t.BeginTransaction();
        await t.ProduceAsync(output, Msg("result"));
        await t.SendOffsetsToTransactionAsync([new TopicPartitionOffset(input, 7)], "g");
        await t.CommitTransactionAsync();

        using Consumer group = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        List<string> visible = Values(outP, IsolationLevel.ReadCommitted);
        long? committed = group.Committed(input);
        await blocker.AbortTransactionAsync();
        Assert.That(Values(outP, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "result" }), "visible after the blocker ended");
        Assert.That((visible, committed), Is.EqualTo((new List<string>(), (long?)null)).Or.EqualTo((new List<string> { "result" }, (long?)7)),
            $"records visible: [{string.Join(",", visible)}], group offset: {committed?.ToString() ?? "none"}");
    }

    // GetWatermarks reads the HW, then the LSO (which reads the HW again): with appends in between the
    // LSO it reports can exceed the HW it reports.
    [Test]
    public void Watermarks_never_report_an_LSO_above_the_HW()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadCommitted });
        consumer.Assign(new TopicPartition("t", 0));
        int stop = 0;
        var writer = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                p.Append(Msg("x"));
            }
        }) { IsBackground = true };
        writer.Start();
        string? bad = null;
        var until = DateTime.UtcNow.AddSeconds(2);
        while (DateTime.UtcNow < until && bad is null)
        {
            for (int i = 0; i < 1000 && bad is null; i++)
            {
                Watermarks w = consumer.GetWatermarks(new TopicPartition("t", 0));
                if (w.LastStableOffset > w.HighWatermark || w.EndOffset > w.LastStableOffset)
                {
                    bad = w.ToString();
                }
            }
        }

        Volatile.Write(ref stop, 1);
        writer.Join();
        Assert.That(bad, Is.Null);
    }

    // The other side of that fix: a committed one-partition offsets transaction is visible at once, even
    // while another producer's transaction is open on the offsets partition (which caps its LSO).
    [Test]
    public async Task Offsets_of_a_one_partition_commit_apply_at_once_despite_another_open_offsets_transaction()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("in");
        var input = new TopicPartition("in", 0);
        await using Producer blocker = await TransactionalAsync(store, "blocker");
        blocker.BeginTransaction();
        await blocker.SendOffsetsToTransactionAsync([new TopicPartitionOffset(input, 3)], "other");

        await using Producer t = await TransactionalAsync(store, "t");
        t.BeginTransaction();
        await t.SendOffsetsToTransactionAsync([new TopicPartitionOffset(input, 7)], "g");
        await t.CommitTransactionAsync();
        using Consumer group = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        Assert.That(group.Committed(input), Is.EqualTo(7));
        await blocker.AbortTransactionAsync();
        using Consumer other = store.CreateConsumer(new ConsumerOptions { GroupId = "other" });
        Assert.That(other.Committed(input), Is.Null);
    }
}
