using System.Collections.Concurrent;
using System.Text;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Inspection;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Unified;

/// <summary>
/// A seeded, concurrent mix of everything that changed together: transactional producers (with offsets),
/// plain group commits, read-committed consume loops, unified map+record transactions, retention with small
/// segments, a scratch topic deleted and created again while producers write to it, and both live
/// restatements running often. Then close, verify the directory, reopen and check the invariants.
/// </summary>
public class ChaosStressTests
{
    private static readonly TopicPartition A0 = new("a", 0);
    private static readonly TopicPartition A1 = new("a", 1);
    private static readonly TopicPartition B0 = new("b", 0);
    private static readonly TopicPartition Moves = new("moves", 0);
    private static readonly TopicPartition Scratch = new("scratch", 0);
    private const int Accounts = 8;
    private const long Initial = 1000;

    private enum Outcome { Committed, Aborted, Unknown }

    private sealed class Run
    {
        public readonly ConcurrentQueue<string> Unexpected = new();
        public readonly ConcurrentDictionary<string, Outcome> Txns = new();
        public readonly ConcurrentDictionary<string, int> WrittenToB = new(); // txn -> records on b-0
        public readonly ConcurrentDictionary<string, Outcome> MoveOutcomes = new();
        public readonly ConcurrentDictionary<string, long> LastTxnOffsets = new(); // group -> offset on "in"-0 of last committed txn
        public readonly ConcurrentDictionary<string, bool> TxnGroupsUnknown = new();
        public readonly ConcurrentBag<(string Consumer, string Txn, TopicPartition Tp, long Offset)> Seen = new();
        public readonly ConcurrentDictionary<(string Group, TopicPartition Tp), long> PlainCommits = new();
        public readonly ConcurrentDictionary<string, int> Counters = new();

        public void Count(string what) => Counters.AddOrUpdate(what, 1, (_, n) => n + 1);

        public void Fail(string where, Exception e) => Unexpected.Enqueue($"{where}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
    }

    private static LogStoreOptions Options(DurabilityMode mode) => new()
    {
        Durability = mode,
        SegmentBytes = 2048,
        PreallocateBytes = 0,
        RetentionCheckInterval = TimeSpan.FromMilliseconds(15),
        TransactionTimeoutCheckInterval = TimeSpan.FromMilliseconds(15),
        FlushInterval = TimeSpan.FromMilliseconds(20),
    };

    private static Message Msg(string v) => new(Encoding.UTF8.GetBytes(v));

    private static string Text(ReadOnlySpan<byte> b) => Encoding.UTF8.GetString(b);

    [TestCase(1, DurabilityMode.None, 3)]
    [TestCase(2, DurabilityMode.GroupCommit, 3)]
    public Task Short_chaos(int seed, DurabilityMode mode, int seconds) => ChaosAsync(seed, mode, seconds);

    [Explicit("long randomized stress")]
    [TestCase(11, DurabilityMode.None, 8)]
    [TestCase(12, DurabilityMode.GroupCommit, 8)]
    [TestCase(13, DurabilityMode.Periodic, 8)]
    [TestCase(14, DurabilityMode.None, 8)]
    [TestCase(15, DurabilityMode.GroupCommit, 8)]
    [TestCase(16, DurabilityMode.Periodic, 8)]
    [TestCase(17, DurabilityMode.None, 8)]
    [TestCase(18, DurabilityMode.GroupCommit, 8)]
    public Task Long_chaos(int seed, DurabilityMode mode, int seconds) => ChaosAsync(seed, mode, seconds);

    private static async Task ChaosAsync(int seed, DurabilityMode mode, int seconds)
    {
        using var dir = new TempDirectory();
        var run = new Run();
        LogStore store = LogStore.Open(dir.Path, Options(mode));
        store.Groups.LiveRestateSlack = 40;
        store.Coordinator.LiveRestateSlack = 40;
        store.CreateTopic("a", 2, new TopicOptions { RetentionBytes = 3000 });
        store.CreateTopic("b", 1);
        store.CreateTopic("moves", 1);
        store.CreateTopic("in", 1);
        store.CreateTopic("scratch", 1, new TopicOptions { RetentionBytes = 3000 });
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.NoSync, CheckpointInterval = null, LockTimeout = TimeSpan.FromMilliseconds(20) });
        TransactionalMap<int, long> balances = engine.OpenMap("balances", Serializers.Int32, Serializers.Int64);
        using (MvccTransaction init = engine.BeginTransaction())
        {
            for (int i = 0; i < Accounts; i++)
            {
                balances.Put(init, i, Initial);
            }

            init.Commit();
        }

        // AutoOffsetReset.Error refuses an assignment without a committed offset: give that group one.
        await store.Groups.CommitAsync("c-error", [new(A0, 0), new(A1, 0), new(B0, 0), new(Moves, 0)]);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        using var consumersStop = new CancellationTokenSource();
        var tasks = new List<Task>
        {
            Task.Run(() => TransactionalProducerAsync(store, run, "tp1", seed * 100 + 1, stop.Token)),
            Task.Run(() => TransactionalProducerAsync(store, run, "tp2", seed * 100 + 2, stop.Token)),
            Task.Run(() => MoverAsync(store, balances, run, "bank1", seed * 100 + 3, stop.Token)),
            Task.Run(() => MoverAsync(store, balances, run, "bank2", seed * 100 + 4, stop.Token)),
            Task.Run(() => ScratchAdminAsync(store, run, seed * 100 + 5, stop.Token)),
            Task.Run(() => PlainScratchProducerAsync(store, run, stop.Token)),
            Task.Run(() => RetentionAsync(store, run, stop.Token)),
            Task.Run(() => PlainCommitterAsync(store, run, seed * 100 + 6, stop.Token)),
        };
        var consumers = new List<Task>
        {
            Task.Run(() => ConsumeLoopAsync(store, run, "c-earliest", AutoOffsetReset.Earliest, consumersStop.Token)),
            Task.Run(() => ConsumeLoopAsync(store, run, "c-latest", AutoOffsetReset.Latest, consumersStop.Token)),
            Task.Run(() => ConsumeLoopAsync(store, run, "c-error", AutoOffsetReset.Error, consumersStop.Token)),
        };
        await Task.WhenAll(tasks);
        await Task.Delay(200); // let the consumers catch up
        consumersStop.Cancel();
        await Task.WhenAll(consumers);

        int groupRestates = store.Groups.Restatements;
        long txnStateStart = store.GetPartition("__transaction_state", 0).LogStartOffset;
        engine.Dispose();
        await store.DisposeAsync();
        TestContext.Out.WriteLine($"seed {seed} {mode}: " + string.Join(", ", run.Counters.OrderBy(k => k.Key).Select(k => $"{k.Key}={k.Value}")) + $", offsets restatements={groupRestates}, __transaction_state start={txnStateStart}");

        Assert.That(run.Unexpected, Is.Empty, string.Join("\n\n", run.Unexpected.Take(5)));

        VerifyReport report = new StoreVerifier(dir.Path, 1 << 20, storeOpen: false).Run();
        Assert.That(report.Errors, Is.Zero, string.Join("\n", report.Findings.Select(f => $"{f.Severity} {f.File}@{f.Position}: {f.Message}")));

        // No consumer saw an aborted transaction's records.
        foreach ((string consumer, string txn, TopicPartition tp, long offset) in run.Seen)
        {
            if (run.Txns.TryGetValue(txn, out Outcome o) && o == Outcome.Aborted)
            {
                Assert.Fail($"{consumer} saw {txn} at {tp}@{offset}, an aborted transaction");
            }

            if (run.MoveOutcomes.TryGetValue(txn, out Outcome m) && m == Outcome.Aborted)
            {
                Assert.Fail($"{consumer} saw {txn} at {tp}@{offset}, an aborted move");
            }
        }

        using (LogStore reopened = LogStore.Open(dir.Path, Options(mode)))
        {
            using TransactionEngine engine2 = reopened.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.NoSync, CheckpointInterval = null });
            TransactionalMap<int, long> balances2 = engine2.OpenMap("balances", Serializers.Int32, Serializers.Int64);
            long sum = 0;
            using (MvccTransaction read = engine2.BeginTransaction())
            {
                for (int i = 0; i < Accounts; i++)
                {
                    sum += balances2.Get(read, i, 0);
                }
            }

            Assert.That(sum, Is.EqualTo(Accounts * Initial), "money is conserved");

            // Every committed move has its message, and every message is of a committed (or unknown) move.
            var movesSeen = new HashSet<string>();
            LogPartition moves = reopened.GetPartition("moves", 0);
            using (LogReader reader = moves.OpenReader(moves.LogStartOffset, IsolationLevel.ReadCommitted))
            {
                while (reader.TryRead(out Record r))
                {
                    string id = Text(r.Value).Split('|')[1];
                    Assert.That(movesSeen.Add(id), Is.True, $"move {id} twice");
                }
            }

            foreach ((string id, Outcome o) in run.MoveOutcomes)
            {
                if (o == Outcome.Committed)
                {
                    Assert.That(movesSeen, Does.Contain(id), $"committed move {id} has no message");
                }
                else if (o == Outcome.Aborted)
                {
                    Assert.That(movesSeen, Does.Not.Contain(id), $"aborted move {id} has a message");
                }
            }

            foreach (string id in movesSeen)
            {
                Assert.That(run.MoveOutcomes.ContainsKey(id), Is.True, $"message of unknown move {id}");
            }

            // b-0 has no retention: its committed records are exactly the committed transactions', complete.
            var onB = new Dictionary<string, int>();
            LogPartition b = reopened.GetPartition("b", 0);
            using (LogReader reader = b.OpenReader(b.LogStartOffset, IsolationLevel.ReadCommitted))
            {
                while (reader.TryRead(out Record r))
                {
                    string txn = Text(r.Value).Split('|')[1];
                    onB[txn] = onB.GetValueOrDefault(txn) + 1;
                }
            }

            foreach ((string txn, int n) in run.WrittenToB)
            {
                Outcome o = run.Txns.GetValueOrDefault(txn, Outcome.Unknown);
                if (o == Outcome.Committed)
                {
                    Assert.That(onB.GetValueOrDefault(txn), Is.EqualTo(n), $"committed {txn} on b-0");
                }
                else if (o == Outcome.Aborted)
                {
                    Assert.That(onB.ContainsKey(txn), Is.False, $"aborted {txn} on b-0");
                }
            }

            // Group offsets: plain commits, and transactional offsets of the last committed transaction.
            foreach (((string group, TopicPartition tp), long offset) in run.PlainCommits)
            {
                Assert.That(reopened.Groups.Committed(group, tp), Is.EqualTo(offset), $"plain commit of {group} on {tp}");
            }

            foreach ((string group, long offset) in run.LastTxnOffsets)
            {
                if (!run.TxnGroupsUnknown.ContainsKey(group))
                {
                    Assert.That(reopened.Groups.Committed(group, new TopicPartition("in", 0)), Is.EqualTo(offset), $"transactional offsets of {group}");
                }
            }
        }

        VerifyReport after = new StoreVerifier(dir.Path, 1 << 20, storeOpen: false).Run();
        Assert.That(after.Errors, Is.Zero, string.Join("\n", after.Findings.Select(f => $"{f.Severity} {f.File}@{f.Position}: {f.Message}")));
    }

    private static async Task TransactionalProducerAsync(LogStore store, Run run, string id, int seed, CancellationToken stop)
    {
        var rng = new Random(seed);
        string group = "tg-" + id;
        try
        {
            await using Producer p = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = id, TransactionTimeout = TimeSpan.FromSeconds(60) });
            await p.InitTransactionsAsync();
            TopicPartition[] targets = [A0, A1, B0, Scratch];
            for (int n = 0; !stop.IsCancellationRequested; n++)
            {
                string txn = $"{id}-{n}";
                bool commit = rng.Next(10) < 7;
                bool offsets = rng.Next(3) == 0;
                p.BeginTransaction();
                bool failed = false;
                int records = rng.Next(1, 5);
                int toB = 0;
                for (int k = 0; k < records && !failed; k++)
                {
                    TopicPartition tp = targets[rng.Next(targets.Length)];
                    try
                    {
                        if (tp == B0)
                        {
                            toB++;
                            run.WrittenToB[txn] = toB;
                        }

                        await p.ProduceAsync(tp, Msg($"T|{txn}|{k}"));
                    }
                    catch (TopicNotFoundException) when (tp == Scratch)
                    {
                        run.Count("txn-scratch-missing");
                        failed = true;
                    }
                }

                if (offsets && !failed)
                {
                    await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(new TopicPartition("in", 0), n)], group);
                }

                if (commit && !failed)
                {
                    run.Txns[txn] = Outcome.Unknown;
                    await p.CommitTransactionAsync();
                    run.Txns[txn] = Outcome.Committed;
                    run.Count("txn-commit");
                    if (offsets)
                    {
                        run.LastTxnOffsets[group] = n;
                    }
                }
                else
                {
                    run.Txns[txn] = Outcome.Unknown;
                    await p.AbortTransactionAsync();
                    run.Txns[txn] = Outcome.Aborted;
                    run.Count("txn-abort");
                }
            }
        }
        catch (Exception e)
        {
            run.Fail(id, e);
        }
    }

    private static async Task MoverAsync(LogStore store, TransactionalMap<int, long> balances, Run run, string id, int seed, CancellationToken stop)
    {
        var rng = new Random(seed);
        try
        {
            await using Producer p = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = id, TransactionTimeout = TimeSpan.FromSeconds(60) });
            await p.InitTransactionsAsync();
            for (int n = 0; !stop.IsCancellationRequested; n++)
            {
                string move = $"{id}-{n}";
                int from = rng.Next(Accounts);
                int to = (from + 1 + rng.Next(Accounts - 1)) % Accounts;
                long amount = rng.Next(1, 50);
                bool commit = rng.Next(10) < 8;
                StoreTransaction tx = store.BeginTransaction(p);
                try
                {
                    balances.Put(tx.Maps, from, balances.Get(tx.Maps, from, 0) - amount);
                    balances.Put(tx.Maps, to, balances.Get(tx.Maps, to, 0) + amount);
                }
                catch (WriteConflictException)
                {
                    run.Count("move-conflict");
                    await tx.AbortAsync();
                    continue;
                }

                run.MoveOutcomes[move] = Outcome.Unknown;
                await tx.ProduceAsync(Moves, Msg($"M|{move}|{from}|{to}|{amount}"));
                if (rng.Next(4) == 0)
                {
                    await tx.ProduceAsync(A0, Msg($"M|{move}|side"));
                }

                if (commit)
                {
                    await tx.CommitAsync();
                    run.MoveOutcomes[move] = Outcome.Committed;
                    run.Count("move-commit");
                }
                else
                {
                    await tx.AbortAsync();
                    run.MoveOutcomes[move] = Outcome.Aborted;
                    run.Count("move-abort");
                }
            }
        }
        catch (Exception e)
        {
            run.Fail(id, e);
        }
    }

    private static async Task ScratchAdminAsync(LogStore store, Run run, int seed, CancellationToken stop)
    {
        var rng = new Random(seed);
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(rng.Next(5, 40));
                try
                {
                    store.DeleteTopic("scratch");
                    run.Count("scratch-deleted");
                }
                catch (InvalidTransactionStateException)
                {
                    run.Count("scratch-delete-refused");
                    continue;
                }

                await Task.Delay(rng.Next(0, 10));
                store.CreateTopic("scratch", 1, new TopicOptions { RetentionBytes = 3000 });
            }
        }
        catch (Exception e)
        {
            run.Fail("scratch-admin", e);
        }
    }

    private static async Task PlainScratchProducerAsync(LogStore store, Run run, CancellationToken stop)
    {
        try
        {
            await using Producer p = await store.CreateProducerAsync();
            for (int n = 0; !stop.IsCancellationRequested; n++)
            {
                try
                {
                    await p.ProduceAsync(Scratch, Msg($"P|plain-{n}"));
                    run.Count("plain-scratch");
                    if (n % 8 == 0)
                    {
                        await Task.Delay(1); // leave the two cores to the others
                    }
                }
                catch (TopicNotFoundException)
                {
                    run.Count("plain-scratch-missing");
                    await Task.Delay(1);
                }
            }
        }
        catch (Exception e)
        {
            run.Fail("plain-scratch", e);
        }
    }

    private static async Task RetentionAsync(LogStore store, Run run, CancellationToken stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                int deleted = store.EnforceRetention();
                run.Counters.AddOrUpdate("retention-deleted", deleted, (_, n) => n + deleted);
                await Task.Delay(3);
            }
        }
        catch (Exception e)
        {
            run.Fail("retention", e);
        }
    }

    private static async Task PlainCommitterAsync(LogStore store, Run run, int seed, CancellationToken stop)
    {
        var rng = new Random(seed);
        var tp = new TopicPartition("in", 0);
        try
        {
            using Consumer c = store.CreateConsumer(new ConsumerOptions { GroupId = "plain" });
            c.Assign([tp, B0]);
            for (long n = 0; !stop.IsCancellationRequested; n++)
            {
                TopicPartition target = rng.Next(2) == 0 ? tp : B0;
                long offset = target == tp ? n : Math.Min(n, store.GetPartition("b", 0).LogEndOffset);
                await c.Commit([new TopicPartitionOffset(target, offset)]);
                run.PlainCommits[("plain", target)] = offset;
                run.Count("plain-commit");
                if (n % 8 == 0)
                {
                    await Task.Delay(1);
                }
            }
        }
        catch (Exception e)
        {
            run.Fail("plain-committer", e);
        }
    }

    private static async Task ConsumeLoopAsync(LogStore store, Run run, string name, AutoOffsetReset reset, CancellationToken stop)
    {
        var positions = new Dictionary<TopicPartition, long>();
        try
        {
            using Consumer c = store.CreateConsumer(new ConsumerOptions { GroupId = name, AutoOffsetReset = reset, Isolation = IsolationLevel.ReadCommitted });
            c.Assign([A0, A1, B0, Moves]);
            int sinceCommit = 0;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await foreach (ConsumeResult r in c.ConsumeAsync(stop))
                    {
                        if (positions.TryGetValue(r.TopicPartition, out long last) && r.Offset <= last)
                        {
                            run.Unexpected.Enqueue($"{name}: {r.TopicPartition}@{r.Offset} after {last}");
                        }

                        positions[r.TopicPartition] = r.Offset;
                        string[] parts = Text(r.Value).Split('|');
                        run.Seen.Add((name, parts[1], r.TopicPartition, r.Offset));
                        if (++sinceCommit >= 20)
                        {
                            sinceCommit = 0;
                            var offsets = c.Assignment.Select(tp => new TopicPartitionOffset(tp, c.Position(tp))).ToList();
                            await c.Commit(offsets);
                            foreach (TopicPartitionOffset o in offsets)
                            {
                                run.PlainCommits[(name, o.TopicPartition)] = o.Offset;
                            }

                            run.Count("consumer-commit");
                        }
                    }
                }
                catch (OffsetOutOfRangeException e) when (reset == AutoOffsetReset.Error)
                {
                    run.Count("consumer-out-of-range");
                    c.Seek(e.Partition, store.GetPartition(e.Partition.Topic, e.Partition.Partition).LogStartOffset);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            run.Fail(name, e);
        }
    }
}
