using TxLog.Inspection;
using TxLog.Records;

namespace TxLog.Cli.Tests;

/// <summary>
/// A live store writes a segment while verify/dump read it: bytes the scanner buffered before a batch
/// was finished must not be reported as damage once the batch (and the next) are in the file.
/// </summary>
public sealed class ScannerLiveWriteTests : ScenarioTest
{
    [Test]
    public void A_batch_finished_after_the_scanner_buffered_it_is_read_as_a_batch_not_as_invalid_bytes()
    {
        string segment = Segments(Scenario.Topic, 0)[0];
        List<(long Position, int Size, long BaseOffset)> batches = RawLog.Batches(segment);
        Assume.That(batches.Count, Is.GreaterThanOrEqualTo(3));
        byte[] original = File.ReadAllBytes(segment);
        (long bPos, int bSize, long bBase) = batches[1];
        (long cPos, int cSize, _) = batches[2];

        // The file as a live store leaves it mid-write: batch A whole, the first bytes of B, then preallocated zeros.
        string live = Path.Combine(DataDir, "live.log");
        byte[] partial = new byte[original.Length + 4096];
        Array.Copy(original, 0, partial, 0, bPos + 10);
        File.WriteAllBytes(live, partial);

        using var scanner = new SegmentScanner(live, 1048588);
        ScanItem a = scanner.Next();
        Assert.That(a.Kind, Is.EqualTo(ScanItemKind.Batch));
        Assert.That(a.Check, Is.EqualTo(BatchCheck.Valid));

        // The store finishes B and writes C before the scanner looks at B.
        using (var f = new FileStream(live, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            f.Position = bPos;
            f.Write(original, (int)bPos, (int)(cPos + cSize - bPos));
        }

        ScanItem b = scanner.Next();
        Assert.That(b.Kind, Is.EqualTo(ScanItemKind.Batch), $"{b.Kind} at {b.Position} ({b.Length} bytes, {b.Check})");
        Assert.That(b.Check, Is.EqualTo(BatchCheck.Valid));
        Assert.That(b.Position, Is.EqualTo(bPos));
        Assert.That(new RecordBatch(b.Bytes.Span).BaseOffset, Is.EqualTo(bBase));
        ScanItem c = scanner.Next();
        Assert.That((c.Kind, c.Position, c.Check), Is.EqualTo((ScanItemKind.Batch, cPos, BatchCheck.Valid)));
    }
}
