using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using TxLog.Consuming;
using TxLog.CrashChild;
using TxLog.Mvcc;
using TxLog.Records;

namespace TxLog.Tests.Crash;

/// <summary>
/// Checker of the child's <c>pipeline</c> mode (exactly-once consume → process → produce with state).
/// After every kill, with C the group's committed input offset: the committed results are exactly
/// orders 0..C-1, each once, in order (nothing processed twice, nothing skipped); every offset the child
/// acknowledged is ≤ C; the per-customer risk in the map equals the sum of the scores of those orders;
/// and C never goes back.
/// </summary>
internal sealed class PipelineCrashScenario(string dataDirectory, int orders) : ICrashScenario
{
    public const int Customers = 17;
    private long _lastCommitted;

    public long Committed => _lastCommitted;

    public string Mode => "pipeline";

    public IEnumerable<string> ChildOptions(int round) => [];

    public void BeforeRound(int round)
    {
        if (round != 0)
        {
            return;
        }

        using LogStore store = LogStore.Open(dataDirectory);
        store.CreateTopic(PipelineMode.Input);
        store.CreateTopic(PipelineMode.Output);
        LogPartition input = store.GetPartition(PipelineMode.Input, 0);
        using LogAppender appender = input.CreateAppender();
        for (long order = 0; order < orders; order++)
        {
            byte[] key = new byte[8];
            BinaryPrimitives.WriteInt64BigEndian(key, order);
            byte[] value = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(value, (int)(order % Customers));
            appender.Append(new Message(key, value));
        }

        appender.FlushAsync().AsTask().GetAwaiter().GetResult();
    }

    public void AfterRound(CrashRound round)
    {
        string where = $"round {round.Number}";
        long maxAck = 0;
        foreach (string line in round.Lines)
        {
            if (line.StartsWith("ACK ", StringComparison.Ordinal))
            {
                maxAck = Math.Max(maxAck, long.Parse(line.AsSpan(4), CultureInfo.InvariantCulture));
            }
        }

        using LogStore store = LogStore.Open(dataDirectory);
        long committed = store.Groups.Committed(PipelineMode.Group, new TopicPartition(PipelineMode.Input, 0)) ?? 0;
        Assert.That(committed, Is.GreaterThanOrEqualTo(maxAck), $"{where}: acknowledged input offset {maxAck} is not committed (committed {committed})");
        Assert.That(committed, Is.GreaterThanOrEqualTo(_lastCommitted), $"{where}: the committed offset went back");

        var results = new List<long>();
        var expectedRisk = new long[Customers];
        LogPartition output = store.GetPartition(PipelineMode.Output, 0);
        using (LogReader reader = output.OpenReader(output.LogStartOffset, IsolationLevel.ReadCommitted))
        {
            while (reader.TryRead(out Record record))
            {
                long order = BinaryPrimitives.ReadInt64BigEndian(record.Key);
                results.Add(order);
                string[] value = Encoding.UTF8.GetString(record.Value).Split(':');
                Assert.That(long.Parse(value[1], CultureInfo.InvariantCulture), Is.EqualTo(PipelineMode.Score(order)), $"{where}: score of order {order}");
                expectedRisk[order % Customers] += PipelineMode.Score(order);
            }
        }

        Assert.That(results.Count, Is.EqualTo(committed), $"{where}: {results.Count} committed results for {committed} committed input offsets");
        for (int i = 0; i < results.Count; i++)
        {
            Assert.That(results[i], Is.EqualTo(i), $"{where}: result #{i} is order {results[i]} (a duplicate or a gap)");
        }

        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
        TransactionalMap<int, long> risk = engine.OpenMap("risk", Serializers.Int32, Serializers.Int64);
        using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
        for (int customer = 0; customer < Customers; customer++)
        {
            Assert.That(risk.Get(tx, customer, 0), Is.EqualTo(expectedRisk[customer]), $"{where}: risk state of customer {customer} disagrees with the results ({engine.RecoverySummary})");
        }

        _lastCommitted = committed;
        TestContext.Progress.WriteLine($"{where}: {committed} orders processed exactly once (last acknowledgement {maxAck})");
    }
}
