using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Mvcc;

/// <summary>
/// Redo is trimmed only behind a checkpoint. When every checkpoint is gone but the redo was trimmed, the
/// maps cannot be rebuilt: recovery must say so with a typed exception, not open with what is left.
/// </summary>
public class LostCheckpointTests
{
    [Test]
    public async Task Trimmed_redo_without_any_checkpoint_is_reported_not_replayed_as_if_complete()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = TxLog.Tests.Transactions.Tx.Options(DurabilityMode.None);
        options.SegmentBytes = 4096;
        var mvcc = new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, CheckpointRedoBytes = 1024 };
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            TransactionEngine engine = store.OpenTransactionEngine(mvcc);
            TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
            for (int round = 0; round < 3; round++)
            {
                for (int i = 0; i < 40; i++)
                {
                    using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
                    map.Put(tx, round * 100 + i, i);
                    tx.Commit();
                }

                await engine.CheckpointAsync();
            }

            Assume.That(store.GetPartition(TransactionEngine.RedoTopic, 0).LogStartOffset, Is.GreaterThan(0), "the checkpoints trimmed the redo");
        }

        // Every checkpoint lost (e.g. a directory entry a power cut took): the trimmed redo is all that is left.
        Directory.Delete(Path.Combine(dir.Path, TransactionEngine.CheckpointDirectoryName), recursive: true);
        using LogStore reopened = LogStore.Open(dir.Path, options);
        Assert.Throws<CorruptIndexException>(() => reopened.OpenTransactionEngine(mvcc));
    }
}
