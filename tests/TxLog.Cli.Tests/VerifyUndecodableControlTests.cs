using System.Buffers.Binary;
using TxLog.Records;

namespace TxLog.Cli.Tests;

public sealed class VerifyUndecodableControlTests : ScenarioTest
{
    [Test]
    public void Verify_reports_a_control_batch_whose_records_do_not_decode_instead_of_stopping()
    {
        // The COMMIT marker's record gets a bad key length, under a CRC that matches (as a buggy writer
        // would leave it): the batch is "valid" to the scanner, its records are not.
        string segment = Segments(Scenario.Topic, 0).Single(s => RawLog.Batches(s).Any(b => b.BaseOffset == Facts.CommitMarkerOffset));
        var marker = RawLog.Batches(segment).Single(b => b.BaseOffset == Facts.CommitMarkerOffset);
        byte[] bytes = File.ReadAllBytes(segment);
        Span<byte> batch = bytes.AsSpan((int)marker.Position, marker.Size);
        // Record: length varint, attributes, timestamp delta (0), offset delta (0), key length.
        batch[RecordBatchLayout.RecordsOffset + 4] = 0x7F; // zigzag -64: not a length
        BinaryPrimitives.WriteUInt32BigEndian(batch.Slice(RecordBatchLayout.CrcOffset), Crc32C.Compute(batch.Slice(RecordBatchLayout.AttributesOffset)));
        File.WriteAllBytes(segment, bytes);

        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.Out, Does.Contain("records do not decode"), r.ToString());
        Assert.That(r.Out, Does.Contain("Result: FAILED"), r.ToString());
    }
}
