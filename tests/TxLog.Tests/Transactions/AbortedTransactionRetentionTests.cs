using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): a partition kept every aborted transaction it ever saw in memory
/// (the list read-committed readers filter with), also after retention deleted the segments holding
/// them, so a long-running store with many aborts grew without bound. Kafka drops them with the
/// deleted segments. An abort that began below the new log start and ended above it must stay, and
/// readers already open must keep filtering correctly once the list is trimmed.
/// </summary>
public sealed class AbortedTransactionRetentionTests
{
    [Test]
    public async Task Retention_drops_the_aborted_transactions_that_ended_below_the_log_start_and_readers_still_filter()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Tx.Options(DurabilityMode.None);
        options.RetentionBytes = 1; // every segment but the active one goes
        options.RetentionCheckInterval = TimeSpan.FromHours(1); // the test runs retention itself
        options.PreallocateBytes = 0;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        var tp = new TopicPartition("t", 0);
        LogPartition p = store.GetPartition("t", 0);
        await using Producer tx = await Tx.TransactionalAsync(store, "tx");

        for (int i = 0; i < 10; i++)
        {
            tx.BeginTransaction();
            await tx.ProduceAsync(tp, Tx.Msg("old-aborted-" + i));
            await tx.AbortTransactionAsync();
            p.Append(Tx.Msg("old-" + i));
            p.Roll(); // each abort in a segment of its own, all deleted below
        }

        // One abort that spans the new log start: its first record is in a segment retention deletes,
        // its second record and its marker in the active segment.
        tx.BeginTransaction();
        await tx.ProduceAsync(tp, Tx.Msg("spanning-1"));
        p.Roll();
        long activeStart = p.LogEndOffset;
        await tx.ProduceAsync(tp, Tx.Msg("spanning-2"));

        // A read-committed reader opened before retention, where the new log start will be.
        using LogReader live = p.OpenReader(activeStart, IsolationLevel.ReadCommitted);
        p.Append(Tx.Msg("visible-1"));
        await tx.AbortTransactionAsync();
        Assert.That(p.ProducerState.AbortedSnapshot.Length, Is.EqualTo(11), "precondition");

        Assert.That(store.EnforceRetention(), Is.EqualTo(11), "precondition: every segment but the active one is deleted");
        Assert.That(p.LogStartOffset, Is.EqualTo(activeStart), "precondition: the log starts inside the spanning abort");

        Assert.That(p.ProducerState.AbortedSnapshot.Length, Is.EqualTo(1), "only the abort that ends above the log start is kept");
        Assert.That(p.ProducerState.AbortedSnapshot.Span[0].LastOffset, Is.GreaterThanOrEqualTo(activeStart));

        // An abort after the trim: the live reader must see it although the list is shorter than when it opened.
        tx.BeginTransaction();
        await tx.ProduceAsync(tp, Tx.Msg("new-aborted"));
        await tx.AbortTransactionAsync();
        p.Append(Tx.Msg("visible-2"));
        Assert.That(p.ProducerState.AbortedSnapshot.Length, Is.EqualTo(2));

        Assert.That(ReadAll(live), Is.EqualTo(new[] { "visible-1", "visible-2" }), "the reader opened before retention");
        Assert.That(Tx.Values(p, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "visible-1", "visible-2" }), "a reader from the log start");
        Assert.That(Tx.Values(p, IsolationLevel.ReadUncommitted), Is.EqualTo(new[] { "spanning-2", "visible-1", "new-aborted", "visible-2" }), "sanity");
    }

    private static List<string> ReadAll(LogReader reader)
    {
        var values = new List<string>();
        while (reader.TryRead(out Record record))
        {
            values.Add(TestRecords.Text(record.Value));
        }

        return values;
    }
}
