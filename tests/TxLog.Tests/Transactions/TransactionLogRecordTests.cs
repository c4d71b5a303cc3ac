using System.Buffers.Binary;
using TxLog.Coordination;

namespace TxLog.Tests.Transactions;

public class TransactionLogRecordTests
{
    [Test]
    public void A_metadata_record_round_trips_with_its_unconfirmed_commits()
    {
        var m = new TransactionMetadata("tx", 7, 3, 60_000);
        m.TransitionTo(TransactionState.Ongoing);
        m.Partitions[new TopicPartition("a", 0)] = 12;
        var c = new UnconfirmedCommit(7, 2);
        c.Parts.Add(new(new TopicPartition("b", 1), 40));
        c.Parts.Add(new(new TopicPartition("orders", 5), 41));
        m.UnconfirmedCommits.Add(c);

        TransactionMetadata back = TransactionLogRecords.ReadMetadata("tx", TransactionLogRecords.MetadataValue(m));

        Assert.That(back.State, Is.EqualTo(TransactionState.Ongoing));
        Assert.That(back.Partitions, Is.EquivalentTo(m.Partitions));
        Assert.That(back.UnconfirmedCommits, Has.Count.EqualTo(1));
        Assert.That(back.UnconfirmedCommits[0].ProducerId, Is.EqualTo(7));
        Assert.That(back.UnconfirmedCommits[0].Epoch, Is.EqualTo((short)2));
        Assert.That(back.UnconfirmedCommits[0].Parts, Is.EqualTo(c.Parts));
    }

    [Test]
    public void A_version_0_record_reads_as_having_no_unconfirmed_commits()
    {
        // Version 0 layout: the fields up to the partitions, nothing after them.
        var m = new TransactionMetadata("tx", 7, 3, 60_000);
        m.Partitions[new TopicPartition("a", 0)] = 12;
        byte[] v1 = TransactionLogRecords.MetadataValue(m);
        byte[] v0 = v1.AsSpan(0, v1.Length - 4).ToArray(); // drop the (empty) unconfirmed count
        BinaryPrimitives.WriteInt16BigEndian(v0, 0);

        TransactionMetadata back = TransactionLogRecords.ReadMetadata("tx", v0);

        Assert.That(back.Partitions[new TopicPartition("a", 0)], Is.EqualTo(12));
        Assert.That(back.UnconfirmedCommits, Is.Empty);
    }

    [TestCase(2)]
    [TestCase(-1)]
    public void An_unknown_version_or_a_cut_record_is_corrupt(short version)
    {
        var m = new TransactionMetadata("tx", 7, 3, 60_000);
        byte[] v = TransactionLogRecords.MetadataValue(m);
        BinaryPrimitives.WriteInt16BigEndian(v, version);
        Assert.Throws<CorruptRecordException>(() => TransactionLogRecords.ReadMetadata("tx", v));

        byte[] cut = TransactionLogRecords.MetadataValue(m).AsSpan(0, v.Length - 2).ToArray();
        Assert.Throws<CorruptRecordException>(() => TransactionLogRecords.ReadMetadata("tx", cut));

        byte[] longer = [.. TransactionLogRecords.MetadataValue(m), 0];
        Assert.Throws<CorruptRecordException>(() => TransactionLogRecords.ReadMetadata("tx", longer), "trailing bytes");
    }
}
