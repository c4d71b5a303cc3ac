using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): a producer id from a block whose record was not durable yet was
/// handed out at once to every caller but the one that wrote the block; after a crash that lost the
/// block, the id was handed out again and the new producer's first record was dropped as a duplicate.
/// </summary>
public sealed class ProducerIdDurabilityTests
{
    [Test]
    public async Task No_producer_id_is_handed_out_before_the_record_of_its_block_is_durable()
    {
        using var dir = new TempDirectory();
        var fs = new FaultyFileSystem { Targets = p => p.Contains("__transaction_state", StringComparison.Ordinal) && p.EndsWith(".log", StringComparison.Ordinal) };
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.FileSystem = fs;
        options.PreallocateBytes = 0;
        options.CloseTimeout = TimeSpan.FromSeconds(2);
        LogStore store = LogStore.Open(dir.Path, options);
        try
        {
            fs.FailSync(1, block: true); // the block record's fsync hangs, then fails
            // On pool threads: the caller that leads a group commit runs the fsync on its own thread.
            Task<Producer> first = Task.Run(() => store.CreateProducerAsync().AsTask()); // writes the block record
            Assert.That(fs.WaitForBlockedSync(Tx.Timeout), Is.True);
            Task<Producer> second = Task.Run(() => store.CreateProducerAsync().AsTask()); // an id from the same block

            // While the block's fsync hangs, the second caller must not get an id (before the fix it did, at once).
            Assert.That(second.Wait(TimeSpan.FromMilliseconds(500)), Is.False, "the second id waits for its block to be durable, like the first");

            fs.ReleaseSync();
            Assert.ThrowsAsync(Is.InstanceOf<TxLogException>(), () => first, "the block never became durable");
            Assert.ThrowsAsync(Is.InstanceOf<TxLogException>(), () => second, "so no id of it was handed out");
        }
        finally
        {
            try
            {
                store.Dispose();
            }
            catch (TimeoutException)
            {
                // The failed partition makes the close unclean; not what this test is about.
            }
        }
    }
}
