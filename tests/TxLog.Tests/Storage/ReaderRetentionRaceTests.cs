using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;
using TxLog.Tests.Transactions;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

public sealed class ReaderRetentionRaceTests
{
    // A read-committed reader stopped at an open transaction (the LSO) holds that transaction's first
    // batch in its buffer. Retention then deletes the segment: the LSO jumps to the new log start, and
    // the reader must not hand out the still-open transaction's records from its buffer.
    [Test]
    public async Task A_read_committed_reader_never_returns_an_open_transaction_from_a_deleted_segment()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Tx.Options();
        options.SegmentBytes = 1000;
        options.RetentionBytes = 1;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        var tp = new TopicPartition("t", 0);
        LogPartition p = store.GetPartition("t", 0);
        p.Append(new Message(Bytes("plain"))); // offset 0
        await using Producer tx = await Tx.TransactionalAsync(store, "tx");
        tx.BeginTransaction();
        await tx.ProduceAsync(tp, Tx.Msg("open")); // offset 1, stays open

        using LogReader reader = p.OpenReader(0, IsolationLevel.ReadCommitted);
        Assert.That(reader.TryRead(out Record first), Is.True);
        Assert.That(first.Offset, Is.EqualTo(0));
        Assert.That(reader.TryRead(out _), Is.False, "stops at the open transaction (LSO 1)");

        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadCommitted });
        consumer.Assign(tp);
        Assert.That(consumer.Consume()!.Offset, Is.EqualTo(0));
        Assert.That(consumer.Consume(), Is.Null);

        for (int i = 0; i < 30; i++)
        {
            p.Append(new Message(new byte[150]));
        }

        Assert.That(store.EnforceRetention(), Is.GreaterThan(0), "precondition");
        Assert.That(p.LogStartOffset, Is.GreaterThan(1), "precondition: the open transaction's first batch is deleted");

        var seen = new List<string>();
        try
        {
            while (reader.TryRead(out Record r))
            {
                seen.Add($"{r.Offset}:{(r.HasValue ? Text(r.Value) : "null")}");
            }
        }
        catch (OffsetOutOfRangeException)
        {
        }

        try
        {
            while (consumer.Consume() is { } c)
            {
                seen.Add($"consumer {c.Offset}:{(c.Value is null ? "null" : Text(c.Value))}");
            }
        }
        catch (OffsetOutOfRangeException)
        {
        }

        await tx.AbortTransactionAsync();
        Assert.That(seen, Has.None.Contains(":open"), "a read-committed reader returned a record of an open (then aborted) transaction");
    }
}
