using TxLog.Consuming;
using TxLog.Records;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Storage;

/// <summary>Regression (found by a bug hunt): a reader inside a segment that retention deleted threw ObjectDisposedException.</summary>
public sealed class RetentionUnderReaderTests
{
    [Test]
    public void A_reader_and_a_consumer_inside_a_deleted_segment_get_OffsetOutOfRangeException()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Options();
        options.SegmentBytes = 2_000_000;
        options.RetentionBytes = 1;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        byte[] big = new byte[60_000]; // segments larger than the reader's 1 MiB buffer
        for (int i = 0; i < 100; i++)
        {
            p.Append(new Message(big));
        }

        Assert.That(p.SegmentCount, Is.GreaterThanOrEqualTo(3), "precondition");
        using LogReader reader = p.OpenReader(0);
        Assert.That(reader.TryRead(out _), Is.True);
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadUncommitted });
        consumer.Assign(new TopicPartition("t", 0));
        Assert.That(consumer.Consume(), Is.Not.Null);

        Assert.That(store.EnforceRetention(), Is.GreaterThan(0));
        Assert.Throws<OffsetOutOfRangeException>(() =>
        {
            while (reader.TryRead(out _))
            {
            }
        });
        Assert.Throws<OffsetOutOfRangeException>(() =>
        {
            while (consumer.Consume() is not null)
            {
            }
        });
    }
}
