using TxLog.Consuming;
using TxLog.Inspection;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>The verifier checks what replay decodes: an offsets tombstone's key too.</summary>
public class OffsetTombstoneVerifyTests
{
    [Test]
    public void A_tombstone_whose_key_does_not_decode_is_an_error_as_the_open_would_fail()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            // Well-framed, valid CRC, but the key is not a version-1 offsets key (a buggy writer).
            store.GetPartition(GroupCoordinator.TopicName, 0).Append(new Message(new byte[] { 0, 9, 0 }, null));
        }

        Assert.Throws<CorruptRecordException>(() => LogStore.Open(dir.Path, Options()).Dispose(), "replay decodes tombstone keys");
        VerifyReport report = new StoreVerifier(dir.Path, 1 << 20, storeOpen: false).Run();
        Assert.That(report.Findings.Exists(f => f.Severity == FindingSeverity.Error && f.Message.Contains("does not decode", StringComparison.Ordinal)),
            Is.True, string.Join("\n", report.Findings.Select(f => f.Message)));
    }
}
