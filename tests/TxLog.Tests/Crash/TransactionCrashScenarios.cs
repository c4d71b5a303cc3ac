using System.Globalization;
using System.Text;
using TxLog.Consuming;
using TxLog.CrashChild;
using TxLog.Mvcc;
using TxLog.Records;

namespace TxLog.Tests.Crash;

/// <summary>
/// Checker of the child's <c>txn</c> mode. After each kill: a read-committed reader of the three
/// partitions sees every transaction whose commit was acknowledged, with all its records (on all
/// partitions); never a record of an aborted transaction; never part of a transaction; and at most one
/// transaction of the round beyond the acknowledged ones — the one whose commit was in flight
/// (printed TRY, not COMMIT) — and then all of it. What earlier rounds left does not change.
/// </summary>
internal sealed class TransactionCrashScenario(string dataDirectory) : ICrashScenario
{
    private static readonly TopicPartition[] Partitions = [new("ta", 0), new("ta", 1), new("tb", 0)];
    private HashSet<(int Run, long Txn)> _visible = new();

    public int Committed { get; private set; }

    public string Mode => "txn";

    public IEnumerable<string> ChildOptions(int round) => ["--run", round.ToString(CultureInfo.InvariantCulture)];

    public void BeforeRound(int round)
    {
    }

    public void AfterRound(CrashRound round)
    {
        string where = $"round {round.Number}";
        var committed = new Dictionary<long, int>();
        var aborted = new HashSet<long>();
        long lastTry = -1;
        foreach (string line in round.Lines)
        {
            string[] f = line.Split(' ');
            switch (f[0])
            {
                case "COMMIT":
                    committed[long.Parse(f[2], CultureInfo.InvariantCulture)] = int.Parse(f[3], CultureInfo.InvariantCulture);
                    break;
                case "ABORT":
                    aborted.Add(long.Parse(f[2], CultureInfo.InvariantCulture));
                    break;
                case "TRY":
                    lastTry = long.Parse(f[2], CultureInfo.InvariantCulture);
                    break;
            }
        }

        Committed += committed.Count;
        var seen = new Dictionary<(int Run, long Txn), (int Count, int Expected)>();
        using (LogStore store = LogStore.Open(dataDirectory))
        {
            Assert.That(store.Recovery.CleanShutdown, Is.False, where);
            foreach (TopicPartition tp in Partitions)
            {
                LogPartition partition = store.GetPartition(tp.Topic, tp.Partition);
                Assert.That(partition.LastStableOffset, Is.EqualTo(partition.HighWatermark), $"{where}: {tp} has nothing undecided after recovery");
                using LogReader reader = partition.OpenReader(partition.LogStartOffset, IsolationLevel.ReadCommitted);
                while (reader.TryRead(out Record record))
                {
                    string[] v = Encoding.UTF8.GetString(record.Value).Split(':');
                    var key = (int.Parse(v[0], CultureInfo.InvariantCulture), long.Parse(v[1], CultureInfo.InvariantCulture));
                    int expected = int.Parse(v[3], CultureInfo.InvariantCulture);
                    (int count, int _) = seen.GetValueOrDefault(key);
                    seen[key] = (count + 1, expected);
                }
            }
        }

        foreach (((int run, long txn), (int count, int expected)) in seen)
        {
            Assert.That(count, Is.EqualTo(expected), $"{where}: transaction {run}:{txn} is visible with {count} of its {expected} records");
        }

        foreach ((long txn, int count) in committed)
        {
            Assert.That(seen.ContainsKey((round.Number, txn)), Is.True, $"{where}: acknowledged commit {txn} is missing");
        }

        foreach (long txn in aborted)
        {
            Assert.That(seen.ContainsKey((round.Number, txn)), Is.False, $"{where}: aborted transaction {txn} is visible");
        }

        foreach ((int run, long txn) in seen.Keys)
        {
            if (run == round.Number && !committed.ContainsKey(txn))
            {
                Assert.That(txn, Is.EqualTo(lastTry), $"{where}: transaction {txn} is visible but was neither acknowledged nor the one in flight");
            }
        }

        foreach ((int Run, long Txn) earlier in _visible)
        {
            Assert.That(seen.ContainsKey(earlier), Is.True, $"{where}: transaction {earlier} of an earlier round vanished");
        }

        _visible = new HashSet<(int, long)>(seen.Keys);
        TestContext.Progress.WriteLine($"{where}: {committed.Count} commits and {aborted.Count} aborts acknowledged; {seen.Count} transactions visible in total");
    }
}

/// <summary>
/// Checker of the child's <c>mvcc</c> mode (Instant sync, checkpoints running). After each kill: every
/// acknowledged transaction's marker row is present, no rolled-back one is, at most one unacknowledged
/// one (in flight) is, earlier rounds' rows remain, and the account total is unchanged.
/// </summary>
internal sealed class MvccCrashScenario(string dataDirectory) : ICrashScenario
{
    private HashSet<string> _done = new();

    public int Acknowledged { get; private set; }

    public string Mode => "mvcc";

    public IEnumerable<string> ChildOptions(int round) => ["--run", round.ToString(CultureInfo.InvariantCulture)];

    public void BeforeRound(int round)
    {
    }

    public void AfterRound(CrashRound round)
    {
        string where = $"round {round.Number}";
        var acked = new HashSet<string>();
        var rolledBack = new HashSet<string>();
        foreach (string line in round.Lines)
        {
            string[] f = line.Split(' ');
            if (f[0] == "ACK")
            {
                acked.Add($"{f[1]}:{f[2]}");
            }
            else if (f[0] == "ROLLBACK")
            {
                rolledBack.Add($"{f[1]}:{f[2]}");
            }
        }

        Acknowledged += acked.Count;
        HashSet<string> done;
        using (LogStore store = LogStore.Open(dataDirectory))
        {
            TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
            var accounts = engine.OpenMap("accounts", Serializers.Int32, Serializers.Int64);
            var doneMap = engine.OpenMap("done", Serializers.String, Serializers.Int64);
            using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
            IReadOnlyList<KeyValuePair<int, long>> balances = accounts.Scan(tx);
            Assert.That(balances, Has.Count.EqualTo(TransactionalModes.Accounts), $"{where}: accounts");
            Assert.That(balances.Sum(b => b.Value), Is.EqualTo(TransactionalModes.Accounts * TransactionalModes.InitialBalance), $"{where}: money was created or lost ({engine.RecoverySummary})");
            done = new HashSet<string>(doneMap.Scan(tx).Select(p => p.Key));
        }

        foreach (string key in acked)
        {
            Assert.That(done, Does.Contain(key), $"{where}: acknowledged transaction {key} is missing");
        }

        foreach (string key in rolledBack)
        {
            Assert.That(done, Does.Not.Contain(key), $"{where}: rolled-back transaction {key} is present");
        }

        string prefix = round.Number.ToString(CultureInfo.InvariantCulture) + ":";
        int unacknowledged = done.Count(k => k.StartsWith(prefix, StringComparison.Ordinal) && !acked.Contains(k));
        Assert.That(unacknowledged, Is.LessThanOrEqualTo(1), $"{where}: more than the one in-flight transaction is present without an acknowledgement");
        Assert.That(_done.IsSubsetOf(done), Is.True, $"{where}: a transaction of an earlier round vanished");
        _done = done;
        TestContext.Progress.WriteLine($"{where}: {acked.Count} acknowledged, {rolledBack.Count} rolled back, {done.Count} transactions present");
    }
}
