using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using TxLog.Tests.Transactions;

namespace TxLog.Tests.Crash;

/// <summary>
/// Power cut at every step of a structural operation (segment roll, retention, close, ...): each
/// image is reopened and checked for lost acknowledged data, aborted records read committed, a stuck
/// LSO and lost producer state. Explicit: about two minutes (clean on main when written).
/// </summary>
[Explicit]
public class StructuralCrashPointTests
{
    private const long Pid = 900_000;

    private static LogStoreOptions Options(CrashPointFileSystem? fs, Action<LogStoreOptions>? tune)
    {
        LogStoreOptions o = Tx.Options(DurabilityMode.GroupCommit);
        o.PreallocateBytes = 0;
        o.SegmentBytes = 1024;
        o.IndexIntervalBytes = 128;
        if (fs is not null)
        {
            o.FileSystem = fs;
        }

        tune?.Invoke(o);
        return o;
    }

    // Idempotent batches with sequences 0..n-1 of one producer ("i{seq}"), an aborted transaction and a committed one.
    private static async Task<int> FillAsync(LogStore store, int batches)
    {
        LogPartition t = store.GetPartition("t", 0);
        Producer p = await Tx.TransactionalAsync(store, "tx");
        int seq = 0;
        for (int i = 0; i < batches; i++)
        {
            Tx.AppendRaw(store, t, Pid, 0, 2 * seq, false, $"i{seq}-a", $"i{seq}-b");
            seq++;
            if (i % 3 == 1)
            {
                p.BeginTransaction();
                await p.ProduceAsync(new TopicPartition("t", 0), Tx.Msg($"aborted{i}"));
                await p.AbortTransactionAsync();
            }
            else if (i % 3 == 2)
            {
                p.BeginTransaction();
                await p.ProduceAsync(new TopicPartition("t", 0), Tx.Msg($"committed{i}"));
                await p.CommitTransactionAsync();
            }
        }

        await p.DisposeAsync();
        await store.FlushAsync();
        return seq;
    }

    private static List<string> Check(string image, int lastSeq, bool retention, Action<LogStoreOptions>? tune)
    {
        var problems = new List<string>();
        try
        {
            using LogStore store = LogStore.Open(image, Options(null, tune));
            LogPartition t = store.GetPartition("t", 0);
            List<string> ru = Tx.Values(t, IsolationLevel.ReadUncommitted);
            List<string> rc = Tx.Values(t, IsolationLevel.ReadCommitted);
            if (!retention && t.LogStartOffset != 0)
            {
                problems.Add($"log start {t.LogStartOffset}");
            }

            for (int s = 0; s <= lastSeq; s++)
            {
                if (!ru.Contains($"i{s}-a") && !retention)
                {
                    problems.Add($"lost i{s}");
                }
            }

            if (retention && !ru.Contains($"i{lastSeq}-a"))
            {
                problems.Add($"lost last i{lastSeq}");
            }

            if (rc.Any(v => v.StartsWith("aborted", StringComparison.Ordinal)))
            {
                problems.Add("read committed returns aborted: " + string.Join(",", rc.Where(v => v.StartsWith("aborted", StringComparison.Ordinal))));
            }

            if (t.LastStableOffset != t.HighWatermark)
            {
                problems.Add($"LSO {t.LastStableOffset} below HW {t.HighWatermark}");
            }

            AppendResult? dup = Tx.AppendRaw(store, t, Pid, 0, 2 * lastSeq, false, $"i{lastSeq}-a", $"i{lastSeq}-b");
            if (dup is not { IsDuplicate: true })
            {
                problems.Add($"retry of seq {lastSeq} not detected as duplicate (written at {dup?.BaseOffset})");
            }

            try
            {
                Tx.AppendRaw(store, t, Pid, 0, 2 * (lastSeq + 1), false, "next-a", "next-b");
            }
            catch (Exception e)
            {
                problems.Add($"next sequence refused: {e.GetType().Name}: {e.Message}");
            }
        }
        catch (Exception e)
        {
            problems.Add($"open/read threw {e.GetType().Name}: {e.Message.Split('\n')[0]}");
        }

        return problems;
    }

    private static async Task RunAsync(string what, Func<LogStore, LogStoreOptions, Task> operation, bool retention = false, Action<LogStoreOptions>? tune = null, int batches = 12)
    {
        using var dir = new TempDirectory();
        using var images = new TempDirectory();
        var fs = new CrashPointFileSystem(dir.Path, images.Path) { LoseDirectoryEntries = true };
        int lastSeq;
        LogStoreOptions options = Options(fs, tune);
        LogStore store = LogStore.Open(dir.Path, options);
        try
        {
            store.CreateTopic("t");
            lastSeq = await FillAsync(store, batches) - 1;
            fs.Arm();
            await operation(store, options);
        }
        finally
        {
            try
            {
                store.Dispose();
            }
            finally
            {
                fs.Disarm();
            }
        }

        var all = new List<string>();
        foreach ((string op, string image) in fs.Steps)
        {
            foreach (string p in Check(image, lastSeq, retention, tune))
            {
                all.Add($"{what}: after '{op}': {p}");
            }
        }

        TestContext.Progress.WriteLine($"{what}: {fs.Steps.Count} crash points");
        Assert.That(all, Is.Empty);
    }

    [Test]
    public Task Power_cut_during_close() => RunAsync("close", (store, _) =>
    {
        store.Dispose();
        return Task.CompletedTask;
    });

    [Test]
    public Task Power_cut_during_roll_by_idempotent_append() => RunAsync("roll", async (store, _) =>
    {
        LogPartition t = store.GetPartition("t", 0);
        await t.AppendAsync(Tx.Msg(new string('r', 900)));
    });

    [Test]
    public async Task Power_cut_during_roll_by_transaction_markers() => await RunAsync("roll-marker", async (store, _) =>
    {
        Producer p = await Tx.TransactionalAsync(store, "tx2");
        for (int i = 0; i < 8; i++)
        {
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("t", 0), Tx.Msg(new string('x', 100) + i));
            if (i % 2 == 0)
            {
                await p.AbortTransactionAsync();
            }
            else
            {
                await p.CommitTransactionAsync();
            }
        }

        await store.FlushAsync();
    });

    [Test]
    public Task Power_cut_during_retention() => RunAsync("retention", (store, _) =>
    {
        store.EnforceRetention();
        return Task.CompletedTask;
    }, retention: true, tune: o => o.RetentionBytes = 2048);

    [Test]
    public Task Power_cut_during_clean_reopen() => RunAsync("reopen", (store, options) =>
    {
        store.Dispose();
        LogStore again = LogStore.Open(store.Directory, options);
        again.Dispose();
        return Task.CompletedTask;
    });
}
