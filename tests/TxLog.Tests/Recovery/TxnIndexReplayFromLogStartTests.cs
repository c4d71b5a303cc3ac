using TxLog.Consuming;
using TxLog.Inspection;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Recovery;

/// <summary>
/// A replay that starts at the log start without a producer snapshot cannot know the transactions that
/// were open there; an ABORT marker in the first segment of a transaction whose records all went with
/// the deleted segments is in the log, and its .txnindex entry is right.
/// </summary>
public sealed class TxnIndexReplayFromLogStartTests
{
    [Test]
    public async Task An_abort_marker_whose_transaction_began_before_the_log_start_keeps_its_entry_and_is_not_reported()
    {
        using var dir = new TempDirectory();
        var tp = new TopicPartition("t", 0);
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg("aborted")); // offset 0, segment 0
            p.Roll();
            await producer.AbortTransactionAsync();          // ABORT marker at 1, segment 1
            await p.AppendAsync(Msg("plain-2"));
            p.Roll();                                        // no producer snapshot at an explicit roll
            await p.AppendAsync(Msg("plain-3"));
            Assert.That(p.Log.DeleteSegmentsBefore(1), Is.EqualTo(1), "precondition: segment 0 deleted");
            Assert.That(p.Log.Segments.Select(s => s.BaseOffset), Is.EqualTo(new long[] { 1, 3 }));
        }

        string index = Path.Combine(dir.Path, "t-0", TxLog.Storage.LogSegment.FileName(1, ".txnindex"));
        byte[] before = File.ReadAllBytes(index);
        Assert.That(before, Has.Length.EqualTo(TxLog.Storage.TransactionIndex.EntrySize), "precondition: the entry of the abort at 1");

        // A crash: the only snapshot (the close's, at 4) is past the active segment's base, so producer
        // state is replayed from the log start (1), where the transaction of the marker at 1 is unknown.
        File.Delete(Path.Combine(dir.Path, LogStore.CleanShutdownFileName));
        List<string> reported;
        using (LogStore reopened = LogStore.Open(dir.Path, Options()))
        {
            reported = reopened.Recovery.Actions.Where(a => a.Contains(".txnindex", StringComparison.Ordinal)).ToList();
            Assert.That(Values(reopened.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "plain-2", "plain-3" }), string.Join(" | ", reported));
        }

        byte[] after = File.Exists(index) ? File.ReadAllBytes(index) : [];

        // And the verifier, which expects an entry for every ABORT marker, finds nothing wrong.
        VerifyReport verify = new StoreVerifier(dir.Path, 1 << 20, storeOpen: false).Run();
        Assert.Multiple(() =>
        {
            Assert.That(verify.Findings.Where(f => f.Severity == FindingSeverity.Error).Select(f => f.Message), Is.Empty, "verifier");
            Assert.That(reported, Is.Empty, "reported as damage at open");
            Assert.That(after, Is.EqualTo(before), "the right index was rewritten at open");
        });
    }
}
