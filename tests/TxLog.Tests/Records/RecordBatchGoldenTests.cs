using System.Buffers.Binary;
using System.Text;
using TxLog.Records;

namespace TxLog.Tests.Records;

/// <summary>
/// Pins the RecordBatch v2 encoding byte for byte against arrays written by hand from Kafka's
/// format description (DESIGN.md §4), not from the encoder's output.
/// </summary>
public class RecordBatchGoldenTests
{
    private const long BaseTimestamp = 1_700_000_000_000; // 0x0000018BCFE56800

    // Batch at base offset 5 with two records:
    //   r0: ts = base,      key "k",  value "v1", no headers
    //   r1: ts = base + 10, key null, value "x",  one header ("h" -> 0x01)
    private static readonly byte[] TwoRecordBatch =
    [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // baseOffset 5
        0x00, 0x00, 0x00, 0x47,                         // batchLength 71 = 83 - 12
        0xFF, 0xFF, 0xFF, 0xFF,                         // partitionLeaderEpoch -1
        0x02,                                           // magic 2
        0x00, 0x00, 0x00, 0x00,                         // crc (filled in by the test from the bytes below)
        0x00, 0x00,                                     // attributes: no compression, create time, not transactional
        0x00, 0x00, 0x00, 0x01,                         // lastOffsetDelta 1
        0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00, // baseTimestamp
        0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x0A, // maxTimestamp = base + 10
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // producerId -1
        0xFF, 0xFF,                                     // producerEpoch -1
        0xFF, 0xFF, 0xFF, 0xFF,                         // baseSequence -1
        0x00, 0x00, 0x00, 0x02,                         // recordCount 2
        // r0: length 9 (zig-zag 0x12), attrs 0, tsDelta 0, offsetDelta 0, keyLen 1 (0x02) 'k', valueLen 2 (0x04) "v1", headers 0
        0x12, 0x00, 0x00, 0x00, 0x02, 0x6B, 0x04, 0x76, 0x31, 0x00,
        // r1: length 11 (0x16), attrs 0, tsDelta 10 (0x14), offsetDelta 1 (0x02), keyLen -1 (0x01), valueLen 1 (0x02) 'x',
        //     headers 1 (0x02): keyLen 1 (0x02) 'h', valueLen 1 (0x02) 0x01
        0x16, 0x00, 0x14, 0x02, 0x01, 0x02, 0x78, 0x02, 0x02, 0x68, 0x02, 0x01,
    ];

    // COMMIT marker of producer 42, epoch 3, coordinator epoch 7, at offset 100, timestamp base.
    private static readonly byte[] CommitMarker =
    [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, // baseOffset 100
        0x00, 0x00, 0x00, 0x42,                         // batchLength 66 = 78 - 12
        0xFF, 0xFF, 0xFF, 0xFF,                         // partitionLeaderEpoch -1
        0x02,                                           // magic
        0x00, 0x00, 0x00, 0x00,                         // crc
        0x00, 0x30,                                     // attributes: transactional (0x10) | control (0x20)
        0x00, 0x00, 0x00, 0x00,                         // lastOffsetDelta 0
        0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00, // baseTimestamp
        0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00, // maxTimestamp
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A, // producerId 42
        0x00, 0x03,                                     // producerEpoch 3
        0xFF, 0xFF, 0xFF, 0xFF,                         // baseSequence -1
        0x00, 0x00, 0x00, 0x01,                         // recordCount 1
        // length 16 (0x20), attrs 0, tsDelta 0, offsetDelta 0, keyLen 4 (0x08) [version 0, type 1 COMMIT],
        // valueLen 6 (0x0C) [version 0, coordinatorEpoch 7], headers 0
        0x20, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00,
    ];

    private static byte[] WithCrc(byte[] batch)
    {
        byte[] copy = (byte[])batch.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan(17), ReferenceCrc32C.Compute(copy.AsSpan(21)));
        return copy;
    }

    [Test]
    public void Header_is_61_bytes_with_fields_at_kafka_positions()
    {
        Assert.Multiple(() =>
        {
            Assert.That(RecordBatchLayout.HeaderSize, Is.EqualTo(61));
            Assert.That(RecordBatchLayout.LengthOffset, Is.EqualTo(8));
            Assert.That(RecordBatchLayout.PartitionLeaderEpochOffset, Is.EqualTo(12));
            Assert.That(RecordBatchLayout.MagicOffset, Is.EqualTo(16));
            Assert.That(RecordBatchLayout.CrcOffset, Is.EqualTo(17));
            Assert.That(RecordBatchLayout.AttributesOffset, Is.EqualTo(21));
            Assert.That(RecordBatchLayout.LastOffsetDeltaOffset, Is.EqualTo(23));
            Assert.That(RecordBatchLayout.BaseTimestampOffset, Is.EqualTo(27));
            Assert.That(RecordBatchLayout.MaxTimestampOffset, Is.EqualTo(35));
            Assert.That(RecordBatchLayout.ProducerIdOffset, Is.EqualTo(43));
            Assert.That(RecordBatchLayout.ProducerEpochOffset, Is.EqualTo(51));
            Assert.That(RecordBatchLayout.BaseSequenceOffset, Is.EqualTo(53));
            Assert.That(RecordBatchLayout.RecordsCountOffset, Is.EqualTo(57));
        });
    }

    [Test]
    public void Builder_produces_the_hand_written_bytes()
    {
        using var builder = new RecordBatchBuilder();
        builder.Reset(0, -1, -1, -1);
        builder.Add(BaseTimestamp, "k"u8, true, "v1"u8, true, null);
        builder.Add(BaseTimestamp + 10, default, false, "x"u8, true, [new RecordHeader("h", new byte[] { 0x01 })]);
        byte[] actual = builder.Seal(5).ToArray();

        Assert.That(actual, Is.EqualTo(WithCrc(TwoRecordBatch)));
    }

    [Test]
    public void Control_batch_matches_the_hand_written_commit_marker()
    {
        using var builder = new RecordBatchBuilder();
        builder.Reset(ControlRecord.BatchAttributes, 42, 3, -1);
        ControlRecord.AddTo(builder, ControlRecordType.Commit, 7, BaseTimestamp);
        byte[] actual = builder.Seal(100).ToArray();

        Assert.That(actual, Is.EqualTo(WithCrc(CommitMarker)));
    }

    [Test]
    public void Decoder_reads_the_hand_written_batch()
    {
        byte[] bytes = WithCrc(TwoRecordBatch);
        Assert.That(RecordBatch.Check(bytes, 1 << 20, out int size), Is.EqualTo(BatchCheck.Valid));
        Assert.That(size, Is.EqualTo(83));

        var batch = new RecordBatch(bytes);
        long[] header = [batch.BaseOffset, batch.LastOffset, batch.RecordCount, batch.BaseTimestamp, batch.MaxTimestamp, batch.ProducerId, batch.IsTransactional ? 1 : 0, batch.IsControl ? 1 : 0];
        Assert.That(header, Is.EqualTo(new long[] { 5, 6, 2, BaseTimestamp, BaseTimestamp + 10, -1, 0, 0 }));

        var seen = new List<string>();
        foreach (Record record in batch)
        {
            string key = record.HasKey ? Encoding.UTF8.GetString(record.Key) : "null";
            string value = record.HasValue ? Encoding.UTF8.GetString(record.Value) : "null";
            var headers = new List<string>();
            foreach (RecordHeaderView h in record.Headers)
            {
                headers.Add($"{Encoding.UTF8.GetString(h.Key)}={Convert.ToHexString(h.Value)}");
            }

            seen.Add($"{record.Offset}|{record.Timestamp - BaseTimestamp}|{key}|{value}|{string.Join(",", headers)}");
        }

        Assert.That(seen, Is.EqualTo(new[] { "5|0|k|v1|", "6|10|null|x|h=01" }));
    }

    [Test]
    public void Decoder_reads_the_commit_marker()
    {
        var batch = new RecordBatch(WithCrc(CommitMarker));
        Assert.That(batch.IsControl && batch.IsTransactional, Is.True);
        Assert.That(batch.ProducerId, Is.EqualTo(42));
        Assert.That(batch.ProducerEpoch, Is.EqualTo(3));
        int count = 0;
        foreach (Record record in batch)
        {
            Assert.That(ControlRecord.ReadType(record.Key), Is.EqualTo(ControlRecordType.Commit));
            Assert.That(ControlRecord.ReadCoordinatorEpoch(record.Value), Is.EqualTo(7));
            count++;
        }

        Assert.That(count, Is.EqualTo(1));
    }

    [Test]
    public void Base_offset_and_leader_epoch_are_outside_the_crc()
    {
        byte[] bytes = WithCrc(TwoRecordBatch);
        bytes[7] = 0x99;  // base offset
        bytes[15] = 0x00; // leader epoch
        Assert.That(RecordBatch.Check(bytes, 1 << 20, out _), Is.EqualTo(BatchCheck.Valid));
        bytes[21] ^= 0x01; // attributes are covered
        Assert.That(RecordBatch.Check(bytes, 1 << 20, out _), Is.EqualTo(BatchCheck.BadCrc));
    }

    [Test]
    public void Check_classifies_damaged_headers()
    {
        byte[] good = WithCrc(TwoRecordBatch);
        Assert.That(RecordBatch.Check(good.AsSpan(0, 40), 1 << 20, out _), Is.EqualTo(BatchCheck.Truncated));

        byte[] badMagic = (byte[])good.Clone();
        badMagic[16] = 1;
        Assert.That(RecordBatch.Check(badMagic, 1 << 20, out _), Is.EqualTo(BatchCheck.BadMagic));

        byte[] badLength = (byte[])good.Clone();
        BinaryPrimitives.WriteInt32BigEndian(badLength.AsSpan(8), 10);
        Assert.That(RecordBatch.Check(badLength, 1 << 20, out _), Is.EqualTo(BatchCheck.BadLength));

        byte[] hugeLength = (byte[])good.Clone();
        BinaryPrimitives.WriteInt32BigEndian(hugeLength.AsSpan(8), int.MaxValue);
        Assert.That(RecordBatch.Check(hugeLength, 1 << 20, out _), Is.EqualTo(BatchCheck.BadLength));
    }
}
