using System.Buffers.Binary;
using TxLog.Consuming;
using TxLog.Inspection;
using TxLog.Producers;
using TxLog.Storage;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Recovery;

/// <summary>
/// Damage to a <c>.txnindex</c> (of a rolled segment or of the active one, opened after a clean close
/// or after a crash) must never change what a read-committed reader returns: the store repairs the
/// index from the log (the source of truth), logs the repair unless it is an expected crash artifact
/// (a torn or missing tail of the active segment's index after an unclean close), and the verifier
/// reports the damage.
/// </summary>
public sealed class TxnIndexIntegrityTests
{
    // Two segments, each: aborted txn (a), committed txn (c), aborted txn (b), a plain record.
    // seg 0: 0 a0a, 1 ABORT, 2 c0, 3 COMMIT, 4 a0b, 5 ABORT, 6 plain-0       entries (pid,0,1) (pid,4,5)
    // seg 7: 7 a1a, 8 ABORT, 9 c1, 10 COMMIT, 11 a1b, 12 ABORT, 13 plain-1   entries (pid,7,8) (pid,11,12)
    private static readonly string[] Expected = ["committed-0", "plain-0", "committed-1", "plain-1"];
    private static readonly long[] SegmentBases = [0, 7];
    private static TempDirectory? s_pristineDir;
    private static Dictionary<string, byte[]> s_pristine = null!;

    [OneTimeSetUp]
    public async Task BuildPristineStore()
    {
        s_pristineDir = new TempDirectory();
        var tp = new TopicPartition("t", 0);
        for (int s = 0; s < 2; s++)
        {
            // A close between the segments leaves a producer snapshot at offset 7, where segment 7 starts
            // (as a roll by an append does): recovery after a crash then replays segment 7 only.
            using LogStore store = LogStore.Open(s_pristineDir.Path, Options());
            if (s == 0)
            {
                store.CreateTopic("t");
            }

            LogPartition p = store.GetPartition("t", 0);
            if (s == 1)
            {
                p.Roll();
            }

            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg($"aborted-{s}a"));
            await producer.AbortTransactionAsync();
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg($"committed-{s}"));
            await producer.CommitTransactionAsync();
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg($"aborted-{s}b"));
            await producer.AbortTransactionAsync();
            await p.AppendAsync(Msg($"plain-{s}"));
            if (s == 1)
            {
                Assert.That(p.Log.Segments.Select(x => x.BaseOffset), Is.EqualTo(SegmentBases), "precondition: the layout above");
                Assert.That(p.LogEndOffset, Is.EqualTo(14));
            }
        }

        Assert.That(File.Exists(Path.Combine(s_pristineDir.Path, "t-0", LogSegment.FileName(7, ".snapshot"))), "precondition: a snapshot at segment 7's base");
        s_pristine = Directory.GetFiles(s_pristineDir.Path, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) != LogStore.LockFileName)
            .ToDictionary(f => Path.GetRelativePath(s_pristineDir.Path, f), File.ReadAllBytes);
    }

    [OneTimeTearDown]
    public void DeletePristineStore() => s_pristineDir?.Dispose();

    private static void Restore(string dir)
    {
        foreach ((string rel, byte[] bytes) in s_pristine)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dir, rel))!);
            File.WriteAllBytes(Path.Combine(dir, rel), bytes);
        }
    }

    private static string IndexPath(string dir, long segment) => Path.Combine(dir, "t-0", LogSegment.FileName(segment, ".txnindex"));

    private static void SetLong(byte[] bytes, int position, long value) => BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(position), value);

    private static long GetLong(byte[] bytes, int position) => BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(position));

    // Damages the two-entry index in `bytes`; null means "delete the file".
    private static byte[]? Damage(byte[] original, string damage)
    {
        const int E = TransactionIndex.EntrySize;
        Assert.That(original, Has.Length.EqualTo(2 * E), "precondition: two entries");
        byte[] b = (byte[])original.Clone();
        switch (damage)
        {
            case "cut-mid-entry":
                return b[..^1];
            case "cut-at-entry-boundary":
                return b[..E];
            case "delete":
                return null;
            case "producer-id-bit":
                b[2] ^= 0x10;
                return b;
            case "first-offset-wrong":
                SetLong(b, 10, GetLong(b, 10) + 1); // a transaction starting one later: its first record looks committed
                return b;
            case "marker-offset-wrong":
                SetLong(b, 18, GetLong(b, 18) - 1);
                return b;
            case "version-bit":
                b[1] ^= 0x01;
                return b;
            case "lso-bit":
                b[E + 33] ^= 0x01; // LastStableOffset of entry 1: read by Kafka tools, not by TxLog's readers
                return b;
            case "extra-entry":
            {
                // A plausible entry, in marker order, naming the committed transaction between the two aborts
                // (its first record and its COMMIT marker): it would hide the committed record.
                long pid = GetLong(b, 2);
                long committedFirst = GetLong(b, 18) + 1;
                byte[] extra = new byte[3 * E];
                b.AsSpan(0, E).CopyTo(extra);
                BinaryPrimitives.WriteInt16BigEndian(extra.AsSpan(E), 0);
                SetLong(extra, E + 2, pid);
                SetLong(extra, E + 10, committedFirst);
                SetLong(extra, E + 18, committedFirst + 1);
                SetLong(extra, E + 26, committedFirst + 2);
                b.AsSpan(E, E).CopyTo(extra.AsSpan(2 * E));
                return extra;
            }
            default:
                throw new ArgumentException(damage);
        }
    }

    private static readonly string[] Damages =
    [
        "cut-mid-entry", "cut-at-entry-boundary", "delete", "producer-id-bit", "first-offset-wrong",
        "marker-offset-wrong", "version-bit", "lso-bit", "extra-entry",
    ];

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (string damage in Damages)
        {
            foreach (bool active in new[] { false, true })
            {
                foreach (bool crash in new[] { false, true })
                {
                    yield return new TestCaseData(damage, active, crash)
                        .SetName($"Damaged_txnindex({damage}, {(active ? "active" : "rolled")} segment, {(crash ? "after a crash" : "after a clean close")})");
                }
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void A_damaged_txnindex_is_repaired_from_the_log_and_never_changes_read_committed_results(string damage, bool active, bool crash)
    {
        using var dir = new TempDirectory();
        Restore(dir.Path);
        long segment = SegmentBases[active ? 1 : 0];
        string index = IndexPath(dir.Path, segment);
        byte[] original = File.ReadAllBytes(index);
        byte[]? damaged = Damage(original, damage);
        if (damaged is null)
        {
            File.Delete(index);
        }
        else
        {
            File.WriteAllBytes(index, damaged);
        }

        if (crash)
        {
            File.Delete(Path.Combine(dir.Path, LogStore.CleanShutdownFileName));
        }

        // An expected crash artifact: the active segment's index is not fsynced before the close, so after
        // an unclean close its tail may be torn or missing (and its LastStableOffset values are recomputed).
        bool expectedArtifact = crash && active && damage is "cut-mid-entry" or "cut-at-entry-boundary" or "delete" or "lso-bit";

        // The verifier (read-only) reports it, except what the open repairs silently by design.
        VerifyReport verify = new StoreVerifier(dir.Path, 1 << 20, storeOpen: false).Run();
        string findings = string.Join(" | ", verify.Findings.Select(f => $"{f.Severity} {Path.GetFileName(f.File)} {f.Message}"));
        if (!(crash && active))
        {
            Assert.That(verify.Findings.Where(f => f.Severity == FindingSeverity.Error && (f.File.EndsWith(".txnindex", StringComparison.Ordinal) || f.Message.Contains(".txnindex"))),
                Is.Not.Empty, "the verifier reports the damaged index as an error: " + findings);
        }
        else if (!expectedArtifact)
        {
            Assert.That(verify.Findings.Where(f => f.File.EndsWith(".txnindex", StringComparison.Ordinal) || f.Message.Contains(".txnindex")),
                Is.Not.Empty, "the verifier reports the damaged index: " + findings);
        }

        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            LogPartition p = store.GetPartition("t", 0);
            string actions = string.Join(" | ", store.Recovery.Actions);
            Assert.That(Values(p, IsolationLevel.ReadCommitted), Is.EqualTo(Expected), "read-committed; recovery: " + actions);
            Assert.That(Read(p, 9, IsolationLevel.ReadCommitted).Select(r => r[(r.IndexOf(':') + 1)..]), Is.EqualTo(new[] { "committed-1", "plain-1" }), "read-committed from an offset; recovery: " + actions);
            Assert.That(Values(p, IsolationLevel.ReadUncommitted), Has.Count.EqualTo(8));
            IEnumerable<string> indexActions = store.Recovery.Actions.Where(a => a.Contains(LogSegment.FileName(segment, ".txnindex")));
            if (expectedArtifact)
            {
                Assert.That(indexActions, Is.Empty, "a crash artifact is repaired silently: " + actions);
            }
            else
            {
                Assert.That(indexActions, Is.Not.Empty, "the repair is logged: " + actions);
            }
        }

        Assert.That(File.ReadAllBytes(index), Is.EqualTo(original), "the index was rewritten from the log");

        // Repaired on disk: the next open has nothing to do and reads the same.
        using (LogStore again = LogStore.Open(dir.Path, Options()))
        {
            Assert.That(again.Recovery.Actions.Where(a => a.Contains(".txnindex")), Is.Empty);
            Assert.That(Values(again.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(Expected));
        }

        VerifyReport after = new StoreVerifier(dir.Path, 1 << 20, storeOpen: false).Run();
        Assert.That(after.Findings.Where(f => f.Severity != FindingSeverity.Info), Is.Empty,
            string.Join(" | ", after.Findings.Select(f => $"{f.Severity} {Path.GetFileName(f.File)} {f.Message}")));
    }

    [Test]
    public void A_store_without_txnindex_checksums_is_checked_against_the_log_once()
    {
        using var dir = new TempDirectory();
        Restore(dir.Path);
        string checksums = TransactionIndexChecksums.PathFor(Path.Combine(dir.Path, "t-0"));
        Assert.That(File.Exists(checksums), "precondition: written at the clean close");

        // As a store written before the checksums existed (or whose checksum file was lost), with a damaged
        // entry in a rolled segment: nothing vouches for the index, so it is checked against the log.
        File.Delete(checksums);
        byte[] bytes = File.ReadAllBytes(IndexPath(dir.Path, 0));
        bytes[2] ^= 0x10;
        File.WriteAllBytes(IndexPath(dir.Path, 0), bytes);

        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            string actions = string.Join(" | ", store.Recovery.Actions);
            Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(Expected), actions);
            Assert.That(store.Recovery.Actions, Has.Some.Contains(LogSegment.FileName(0, ".txnindex")), actions);
            Assert.That(store.Recovery.Actions, Has.Some.Contains(TransactionIndexChecksums.FileName), actions);
            Assert.That(File.Exists(checksums), "written once the indexes are checked");
        }

        Assert.That(File.ReadAllBytes(IndexPath(dir.Path, 0)), Is.EqualTo(s_pristine[Path.Combine("t-0", LogSegment.FileName(0, ".txnindex"))]));
        using (LogStore again = LogStore.Open(dir.Path, Options()))
        {
            Assert.That(again.Recovery.Actions, Is.Empty, "checked once");
        }
    }

    [Test]
    public void A_corrupt_checksum_file_is_reported_and_the_indexes_are_checked_against_the_log()
    {
        using var dir = new TempDirectory();
        Restore(dir.Path);
        string checksums = TransactionIndexChecksums.PathFor(Path.Combine(dir.Path, "t-0"));
        byte[] bytes = File.ReadAllBytes(checksums);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(checksums, bytes);

        VerifyReport verify = new StoreVerifier(dir.Path, 1 << 20, storeOpen: false).Run();
        Assert.That(verify.Findings, Has.Some.Matches<VerifyFinding>(f => f.Severity == FindingSeverity.Error && f.File.EndsWith(TransactionIndexChecksums.FileName, StringComparison.Ordinal)),
            string.Join(" | ", verify.Findings.Select(f => $"{f.Severity} {f.File} {f.Message}")));

        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            Assert.That(store.Recovery.Actions, Has.Some.Contains(TransactionIndexChecksums.FileName));
            Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(Expected));
        }

        Assert.That(new StoreVerifier(dir.Path, 1 << 20, storeOpen: false).Run().Findings.Where(f => f.Severity != FindingSeverity.Info), Is.Empty);
    }

    [Test]
    public void A_healthy_clean_open_rewrites_nothing_and_reports_nothing()
    {
        using var dir = new TempDirectory();
        Restore(dir.Path);
        string[] files = [TransactionIndexChecksums.PathFor(Path.Combine(dir.Path, "t-0")), IndexPath(dir.Path, 0), IndexPath(dir.Path, 7)];
        DateTime old = DateTime.UtcNow.AddDays(-1);
        foreach (string f in files)
        {
            File.SetLastWriteTimeUtc(f, old);
        }

        using LogStore store = LogStore.Open(dir.Path, Options());
        Assert.That(store.Recovery.Actions, Is.Empty);
        Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(Expected));
        Assert.That(files.Select(File.GetLastWriteTimeUtc), Is.All.EqualTo(old), "nothing rewritten at open");
    }

    [Test]
    public async Task A_roll_records_the_rolled_segments_txnindex_checksum_so_a_crash_after_it_reports_nothing()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        Restore(dir.Path);
        string partition = Path.Combine(dir.Path, "t-0");
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            LogPartition p = store.GetPartition("t", 0);
            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.ProduceAsync(new TopicPartition("t", 0), Msg("aborted-2"));
            await producer.AbortTransactionAsync();
            p.Roll();

            // What a crash now leaves (the page cache survives): segment 7's index is final and recorded.
            Dictionary<long, TransactionIndexChecksum> recorded = TransactionIndexChecksums.Decode(File.ReadAllBytes(TransactionIndexChecksums.PathFor(partition)), "x");
            Assert.That(recorded[7].Entries, Is.EqualTo(3));
            Assert.That(recorded[7].Matches(File.ReadAllBytes(IndexPath(dir.Path, 7))));
            CopyImage(dir.Path, image.Path);
        }

        using LogStore crashed = LogStore.Open(image.Path, Options());
        Assert.That(crashed.Recovery.CleanShutdown, Is.False);
        Assert.That(crashed.Recovery.Actions.Where(a => a.Contains("txnindex")), Is.Empty);
        Assert.That(Values(crashed.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(Expected));
    }

    [Test]
    public async Task A_leftover_txnindex_at_a_new_segments_base_offset_is_not_taken_over_by_the_segment()
    {
        using var dir = new TempDirectory();
        Restore(dir.Path);

        // A .txnindex without its segment at offset 14, where the next segment will start, naming the
        // transaction that is about to commit there.
        byte[] entry = File.ReadAllBytes(IndexPath(dir.Path, 7))[..TransactionIndex.EntrySize];
        SetLong(entry, 10, 14);
        SetLong(entry, 18, 15);
        SetLong(entry, 26, 16);
        File.WriteAllBytes(IndexPath(dir.Path, 14), entry);
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            LogPartition p = store.GetPartition("t", 0);
            p.Roll();
            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.ProduceAsync(new TopicPartition("t", 0), Msg("committed-2"));
            await producer.CommitTransactionAsync();
        }

        using LogStore reopened = LogStore.Open(dir.Path, Options());
        Assert.That(Values(reopened.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(Expected.Append("committed-2")), string.Join(" | ", reopened.Recovery.Actions));
    }

    [Test]
    public void After_a_crash_an_entry_whose_abort_marker_was_in_the_lost_log_tail_is_dropped_silently()
    {
        using var dir = new TempDirectory();
        Restore(dir.Path);

        // A crash that kept the .txnindex append but not the ABORT marker at offset 12 (nor what followed).
        string log = Path.Combine(dir.Path, "t-0", LogSegment.FileName(7, ".log"));
        byte[] bytes = File.ReadAllBytes(log);
        int position = 0;
        while (BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(position)) != 12)
        {
            position += 12 + BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(position + 8));
        }

        File.WriteAllBytes(log, bytes[..position]);
        File.Delete(Path.Combine(dir.Path, "t-0", LogSegment.FileName(7, ".index")));
        File.Delete(Path.Combine(dir.Path, LogStore.CleanShutdownFileName));

        using LogStore store = LogStore.Open(dir.Path, Options());
        string actions = string.Join(" | ", store.Recovery.Actions);
        Assert.That(store.Recovery.Actions.Where(a => a.Contains(".txnindex")), Is.Empty, actions);

        // The transaction at 11 lost its marker: recovery aborts it (a new marker, a new entry).
        Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "committed-0", "plain-0", "committed-1" }), actions);
    }
}
