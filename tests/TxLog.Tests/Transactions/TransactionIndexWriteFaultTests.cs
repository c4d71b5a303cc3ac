using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Storage;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): when the .txnindex entry of an ABORT marker could not be written,
/// the marker and the in-memory state were already updated and the partition went on accepting writes;
/// a later clean close trusted the incomplete .txnindex (no replay after a clean close), so after the
/// reopen read-committed readers returned the aborted records.
/// </summary>
public sealed class TransactionIndexWriteFaultTests
{
    [Test]
    public async Task An_abort_whose_txnindex_entry_could_not_be_written_stays_aborted_after_a_close_and_reopen()
    {
        using var dir = new TempDirectory();
        var fs = new FaultyFileSystem { Targets = static path => path.EndsWith(".txnindex", StringComparison.Ordinal) };
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.FileSystem = fs;
        var tp = new TopicPartition("t", 0);
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("t");
            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg("aborted"));
            fs.FailWrite();
            try
            {
                await producer.AbortTransactionAsync();
            }
            catch (Exception e) when (e is IOException or TxLogException)
            {
                // The abort reports the failure; what matters is what readers see afterwards.
            }

            Assert.That(fs.Faults, Is.EqualTo(1), "precondition: the .txnindex write failed");
            Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Has.None.EqualTo("aborted"), "live");
        }

        using LogStore reopened = LogStore.Open(dir.Path, Options());
        Assert.That(Values(reopened.GetPartition("t", 0), IsolationLevel.ReadCommitted), Has.None.EqualTo("aborted"), "after a reopen");
    }
}
