using TxLog.Records;
using TxLog.Storage;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Recovery;

/// <summary>
/// Regression: OffsetForTimestamp stopped scanning a segment at a batch that fails its check and went
/// on with the next segment, so a corrupt batch in an older segment made it return a later offset
/// (silently wrong) instead of throwing CorruptRecordException as every other read does.
/// </summary>
public sealed class TimestampLookupCorruptionTests
{
    [Test]
    public void A_corrupt_batch_in_an_older_segment_is_reported_by_a_timestamp_lookup()
    {
        using var dir = new TempDirectory();
        var options = new LogStoreOptions { SegmentBytes = 1000, IndexIntervalBytes = 150 };
        long firstOffsetAt2000;
        long t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 100_000; // recent: no roll by age
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            for (int i = 0; i < 30; i++)
            {
                p.Append(new Message(Bytes($"value-{i}-xxxxxxxxxxxxxxxxxxxx")) { Timestamp = t0 + (i * 1000) });
            }

            Assert.That(p.SegmentCount, Is.GreaterThanOrEqualTo(3), "precondition: several segments");
            firstOffsetAt2000 = p.OffsetForTimestamp(t0 + 1000)!.Value;
            Assert.That(firstOffsetAt2000, Is.EqualTo(1));
        }

        // Damage one byte of the record value of the batch at offset 1 (segment 0, not the active one).
        string log = Path.Combine(dir.Path, "t-0", LogSegment.FileName(0, ".log"));
        byte[] bytes = File.ReadAllBytes(log);
        var layout = Recovery.TestLog.WalkBatches(log);
        (long position, int size) = layout[1];
        bytes[position + size - 3] ^= 0x01;
        File.WriteAllBytes(log, bytes);

        using LogStore reopened = LogStore.Open(dir.Path, options);
        LogPartition partition = reopened.GetPartition("t", 0);
        long? answer;
        try
        {
            answer = partition.OffsetForTimestamp(t0 + 1000);
        }
        catch (CorruptRecordException)
        {
            return; // reported: correct
        }

        Assert.That(answer, Is.EqualTo(1), "the lookup must throw CorruptRecordException or return the true offset, never another one");
    }
}
