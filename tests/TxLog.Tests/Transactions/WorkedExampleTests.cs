using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>DESIGN.md §2.3's example, at its exact offsets.</summary>
public class WorkedExampleTests
{
    // 100 m1 | 101 A | 102 B | 103 A | 104 m5 | 105 B | 106 COMMIT(A) | 107 C | 108 m8 | 109 COMMIT/ABORT(B) | 110 C
    private static async Task<(LogStore Store, LogPartition P, Producer C)> BuildAsync(TempDirectory dir, bool commitB)
    {
        LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        for (int i = 0; i < 100; i++)
        {
            p.Append(Msg($"pre{i}"));
        }

        var tp = new TopicPartition("t", 0);
        Producer a = await TransactionalAsync(store, "A");
        Producer b = await TransactionalAsync(store, "B");
        Producer c = await TransactionalAsync(store, "C");
        a.BeginTransaction();
        b.BeginTransaction();
        c.BeginTransaction();

        Assert.That(p.Append(Msg("m1")).BaseOffset, Is.EqualTo(100));
        Assert.That((await a.ProduceAsync(tp, Msg("A1"))).Offset, Is.EqualTo(101));
        Assert.That((await b.ProduceAsync(tp, Msg("B1"))).Offset, Is.EqualTo(102));
        Assert.That((await a.ProduceAsync(tp, Msg("A2"))).Offset, Is.EqualTo(103));
        Assert.That(p.Append(Msg("m5")).BaseOffset, Is.EqualTo(104));
        Assert.That((await b.ProduceAsync(tp, Msg("B2"))).Offset, Is.EqualTo(105));
        await a.CommitTransactionAsync();
        Assert.That(p.LogEndOffset, Is.EqualTo(107), "COMMIT(A) took offset 106");
        Assert.That((await c.ProduceAsync(tp, Msg("C1"))).Offset, Is.EqualTo(107));
        Assert.That(p.Append(Msg("m8")).BaseOffset, Is.EqualTo(108));
        if (commitB)
        {
            await b.CommitTransactionAsync();
        }
        else
        {
            await b.AbortTransactionAsync();
        }

        Assert.That(p.LogEndOffset, Is.EqualTo(110), "the marker of B took offset 109");
        Assert.That((await c.ProduceAsync(tp, Msg("C2"))).Offset, Is.EqualTo(110));
        return (store, p, c);
    }

    [Test]
    public async Task After_offset_110_the_LSO_is_107_and_the_three_numbers_differ()
    {
        using var dir = new TempDirectory();
        (LogStore store, LogPartition p, Producer c) = await BuildAsync(dir, commitB: true);
        using (store)
        {
            Assert.That(p.HighWatermark, Is.EqualTo(111));
            Assert.That(p.LastStableOffset, Is.EqualTo(107));
            Assert.That(p.EndOffset(IsolationLevel.ReadUncommitted), Is.EqualTo(111));
            Assert.That(p.EndOffset(IsolationLevel.ReadCommitted), Is.EqualTo(107));
            c.Dispose();
        }
    }

    [Test]
    public async Task With_ABORT_B_a_read_committed_reader_gets_100_101_103_104_and_108_only_once_C_is_decided()
    {
        using var dir = new TempDirectory();
        (LogStore store, LogPartition p, Producer c) = await BuildAsync(dir, commitB: false);
        using (store)
        {
            Assert.That(Read(p, 100, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "100:m1", "101:A1", "103:A2", "104:m5" }));

            // Read-uncommitted sees everything below the HW except the markers (106, 109).
            Assert.That(Read(p, 100, IsolationLevel.ReadUncommitted),
                Is.EqualTo(new[] { "100:m1", "101:A1", "102:B1", "103:A2", "104:m5", "105:B2", "107:C1", "108:m8", "110:C2" }));

            await c.CommitTransactionAsync();
            Assert.That(p.LastStableOffset, Is.EqualTo(112));
            Assert.That(Read(p, 100, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "100:m1", "101:A1", "103:A2", "104:m5", "107:C1", "108:m8", "110:C2" }));
            c.Dispose();
        }
    }

    [Test]
    public async Task With_COMMIT_B_read_committed_sees_B_and_stops_at_the_LSO()
    {
        using var dir = new TempDirectory();
        (LogStore store, LogPartition p, Producer c) = await BuildAsync(dir, commitB: true);
        using (store)
        {
            Assert.That(Read(p, 100, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "100:m1", "101:A1", "102:B1", "103:A2", "104:m5", "105:B2" }));
            await c.AbortTransactionAsync();
            Assert.That(Read(p, 106, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "108:m8" }));
            c.Dispose();
        }
    }

    [Test]
    public async Task The_LSO_aborted_index_and_read_committed_view_survive_a_reopen()
    {
        using var dir = new TempDirectory();
        (LogStore store, LogPartition _, Producer c) = await BuildAsync(dir, commitB: false);
        await c.CommitTransactionAsync();
        c.Dispose();
        store.Dispose();

        Assert.That(File.Exists(Path.Combine(dir.Path, "t-0", "00000000000000000000.txnindex")), Is.True, "the abort of B was indexed");
        using LogStore reopened = LogStore.Open(dir.Path, Options());
        LogPartition p = reopened.GetPartition("t", 0);
        Assert.That(p.LastStableOffset, Is.EqualTo(112));
        Assert.That(Read(p, 100, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "100:m1", "101:A1", "103:A2", "104:m5", "107:C1", "108:m8", "110:C2" }));
    }
}
