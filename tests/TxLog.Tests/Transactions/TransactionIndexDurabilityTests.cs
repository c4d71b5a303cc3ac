using System.Collections.Concurrent;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Storage;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): .txnindex files were never fsynced, yet a rolled segment's entries
/// are not rebuilt after a crash, so after a power loss read-committed readers returned aborted records.
/// </summary>
public sealed class TransactionIndexDurabilityTests
{
    private sealed class SyncCountingFileSystem : DelegatingFileSystem
    {
        public ConcurrentDictionary<string, int> Syncs { get; } = new();

        protected override IStorageFile WrapFile(string path, IStorageFile file) => new Counting(this, file);

        private sealed class Counting(SyncCountingFileSystem owner, IStorageFile inner) : DelegatingFile(inner)
        {
            public override void Sync()
            {
                Inner.Sync();
                owner.Syncs.AddOrUpdate(System.IO.Path.GetFileName(Path), 1, (_, n) => n + 1);
            }
        }
    }

    [Test]
    public async Task The_txnindex_of_a_rolled_segment_and_of_the_active_one_at_close_are_fsynced()
    {
        using var dir = new TempDirectory();
        var fs = new SyncCountingFileSystem();
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.FileSystem = fs;
        options.SegmentBytes = 300;
        var tp = new TopicPartition("t", 0);
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("t");
            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg("aborted-1"));
            await producer.AbortTransactionAsync(); // entry in segment 0's .txnindex
            LogPartition p = store.GetPartition("t", 0);
            while (p.SegmentCount < 2)
            {
                await p.AppendAsync(Msg("filler-filler-filler"));
            }

            Assert.That(fs.Syncs.GetValueOrDefault(LogSegment.FileName(0, ".txnindex")), Is.GreaterThanOrEqualTo(1), "fsynced when its segment rolled");

            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg("aborted-2"));
            await producer.AbortTransactionAsync(); // entry in the active segment's .txnindex
        }

        string activeIndex = Directory.GetFiles(Path.Combine(dir.Path, "t-0"), "*.txnindex").Select(Path.GetFileName).Max(StringComparer.Ordinal)!;
        Assert.That(activeIndex, Is.Not.EqualTo(LogSegment.FileName(0, ".txnindex")), "precondition: the second abort landed in a later segment");
        Assert.That(fs.Syncs.GetValueOrDefault(activeIndex), Is.GreaterThanOrEqualTo(1), "fsynced at the clean close");

        using LogStore reopened = LogStore.Open(dir.Path, Options());
        Assert.That(Values(reopened.GetPartition("t", 0), IsolationLevel.ReadCommitted), Has.None.StartsWith("aborted"));
    }
}
