using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>ConsumeBatch and an exception after some records were read.</summary>
public sealed class ConsumerGroupBatchExceptionTests
{
    private static readonly TopicPartition T0 = new("t", 0);
    private static readonly TopicPartition Out = new("out", 0);

    private static ConsumerOptions Member(AutoOffsetReset reset = AutoOffsetReset.Earliest) =>
        new() { GroupId = "g", MaxPollInterval = System.Threading.Timeout.InfiniteTimeSpan, AutoOffsetReset = reset };

    // Regression: ConsumeBatch moved the positions past the records it had read, then an exception
    // from a later partition of the same poll (here: AutoOffsetReset.Error, retention passed the
    // position) threw them away: after the caller fixed that partition, the next batch went on after
    // the lost records, which were never processed.
    [Test]
    public void ConsumeBatch_does_not_lose_the_records_read_before_an_exception()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Options();
        options.SegmentBytes = 1000;
        options.RetentionCheckInterval = TimeSpan.FromHours(1);
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 2, new TopicOptions { RetentionBytes = 1 });
        LogPartition p0 = store.GetPartition("t", 0);
        LogPartition p1 = store.GetPartition("t", 1);
        p1.Append(Msg("p1-0"));

        store.Groups.CommitAsync("g", [new TopicPartitionOffset(T0, 0), new TopicPartitionOffset(new TopicPartition("t", 1), 0)]).AsTask().Wait();
        using Consumer a = store.CreateConsumer(Member(AutoOffsetReset.Error));
        a.Subscribe("t");
        Assert.That(a.ConsumeBatch(1).Select(r => Text(r.Value)), Is.EqualTo(new[] { "p1-0" }), "precondition: takes both, reads t-1 (t-0 is next)");

        for (int i = 0; i < 30; i++)
        {
            p1.Append(new Message(new byte[150])); // rolls t-1's segments
        }

        for (int i = 0; i < 3; i++)
        {
            p0.Append(Msg($"p0-{i}"));
        }

        Assert.That(store.EnforceRetention(), Is.GreaterThan(0), "precondition");
        Assert.That(p1.LogStartOffset, Is.GreaterThan(1), "precondition: t-1's position (1) is below its log start");

        var seen = new List<string>();
        try
        {
            seen.AddRange(a.ConsumeBatch(10).Select(r => Text(r.Value)));
        }
        catch (OffsetOutOfRangeException e)
        {
            Assert.That(e.Offset, Is.EqualTo(1));
        }

        // The caller fixes t-1 (as the exception says) and goes on.
        while (true)
        {
            try
            {
                IReadOnlyList<ConsumeResult> next = a.ConsumeBatch(10);
                if (next.Count == 0)
                {
                    break;
                }

                seen.AddRange(next.Where(r => r.TopicPartition == T0).Select(r => Text(r.Value)));
            }
            catch (OffsetOutOfRangeException)
            {
                a.SeekToBeginning(new TopicPartition("t", 1));
            }
        }

        Assert.That(seen, Is.EqualTo(new[] { "p0-0", "p0-1", "p0-2" }), "t-0's records read before the exception");
    }
}
