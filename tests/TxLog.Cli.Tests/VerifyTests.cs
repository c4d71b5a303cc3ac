using System.Buffers.Binary;

namespace TxLog.Cli.Tests;

public sealed class VerifyTests : ScenarioTest
{
    private string Relative(string path) => Path.GetRelativePath(DataDir, path);

    private static string[] Lines(string output, string prefix) =>
        output.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).ToArray();

    [Test]
    public void A_good_store_verifies_with_exit_code_0()
    {
        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        Assert.That(r.Out, Does.Contain("Store: closed cleanly").And.Contain("Result: OK"));
        Assert.That(Lines(r.Out, "error:"), Is.Empty);
        Assert.That(Lines(r.Out, "warning:"), Is.Empty, "a cleanly closed store has nothing to repair");
        Assert.That(r.Error, Is.Empty);
    }

    [Test]
    public void Findings_beyond_the_per_file_limit_are_counted_not_dropped()
    {
        // 25 records of an unknown type in the coordinator's log: 25 warnings for one file.
        using (LogStore store = LogStore.Open(DataDir))
        {
            LogPartition state = store.GetPartition("__transaction_state", 0);
            for (int i = 0; i < 25; i++)
            {
                state.Append(new TxLog.Records.Message(new byte[] { 9 }, new byte[] { 1 }));
            }
        }

        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(0), "warnings only: " + r);
        string[] warnings = Lines(r.Out, "warning:").Where(l => l.Contains("__transaction_state", StringComparison.Ordinal)).ToArray();
        Assert.That(warnings.Count(l => l.Contains("has unknown type 9", StringComparison.Ordinal)), Is.EqualTo(20), r.ToString());
        Assert.That(warnings, Has.Some.Contains("5 more problems in this file are not listed (0 errors, 5 warnings"), r.ToString());
    }

    [Test]
    public void A_flipped_byte_inside_a_batch_in_the_middle_of_a_segment_fails_with_its_file_and_position()
    {
        string segment = Segments(Scenario.Topic, 0)[0];
        List<(long Position, int Size, long BaseOffset)> batches = RawLog.Batches(segment);
        (long position, int size, long baseOffset) = batches[batches.Count / 2];
        Assume.That(batches.Count / 2, Is.GreaterThan(0).And.LessThan(batches.Count - 1));
        RawLog.FlipByte(segment, position + size - 3);

        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        string[] errors = Lines(r.Out, "error:");
        Assert.That(errors, Has.Length.EqualTo(1), r.ToString());
        Assert.That(errors[0], Does.StartWith($"error: {Relative(segment)}, position {position}: CRC mismatch in the batch at base offset {baseOffset}"));
        Assert.That(r.Out, Does.Contain("Result: FAILED"));
    }

    [Test]
    public void A_corrupted_offset_index_entry_fails_naming_the_index_file()
    {
        // The first segment of orders-0 was rolled, so its index is trusted at open: a wrong entry in
        // the middle is not caught there, only by verify (which compares every entry with the log).
        string index = Path.ChangeExtension(Segments(Scenario.Topic, 0)[0], ".index");
        byte[] bytes = File.ReadAllBytes(index);
        Assume.That(bytes.Length, Is.GreaterThanOrEqualTo(16), "the scenario's small index interval gives several entries");
        int position = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), position + 1); // still ordered, but not a batch start
        File.WriteAllBytes(index, bytes);

        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(Lines(r.Out, "error:"), Has.Some.StartsWith($"error: {Relative(index)}, position 0: entry 0 ").And.Some.Contains("does not point at the start of a batch"), r.ToString());
        Assert.That(Lines(r.Out, "error:"), Has.All.Contains(Relative(index)), "only the index is damaged");
    }

    [Test]
    public void A_corrupted_time_index_fails_naming_the_file()
    {
        string timeIndex = Path.ChangeExtension(Segments(Scenario.Topic, 0)[0], ".timeindex");
        byte[] bytes = File.ReadAllBytes(timeIndex);
        Assume.That(bytes.Length, Is.GreaterThanOrEqualTo(12));
        long ts = BinaryPrimitives.ReadInt64BigEndian(bytes);
        BinaryPrimitives.WriteInt64BigEndian(bytes, ts - 1); // still increasing, but not the batch's timestamp
        File.WriteAllBytes(timeIndex, bytes);

        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(Lines(r.Out, "error:"), Has.Some.StartsWith($"error: {Relative(timeIndex)}, position 0: entry 0 "), r.ToString());
    }

    [Test]
    public void A_missing_txnindex_entry_for_an_abort_marker_fails()
    {
        string[] txnIndexes = Directory.GetFiles(PartitionDir(Scenario.Topic, 0), "*.txnindex");
        Assume.That(txnIndexes, Has.Length.EqualTo(1), "the aborted transaction's marker is in one segment");
        File.WriteAllBytes(txnIndexes[0], []);

        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(Lines(r.Out, "error:"), Has.Some.Contains($"ABORT marker at offset {Facts.AbortMarkerOffset} (producer {Facts.AbortedProducerId}, transaction from {Facts.AbortedFirstOffset}) has no .txnindex entry"), r.ToString());
    }

    [Test]
    public void A_txnindex_that_no_longer_matches_its_checksum_fails_even_when_its_entries_look_right()
    {
        // LastStableOffset is not derived from the log, so only txnindex.checksums shows this change.
        string index = Directory.GetFiles(PartitionDir(Scenario.Topic, 0), "*.txnindex").Single();
        byte[] bytes = File.ReadAllBytes(index);
        long lso = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(26));
        Assume.That(lso, Is.GreaterThan(0));
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(26), lso - 1);
        File.WriteAllBytes(index, bytes);

        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(Lines(r.Out, "error:"), Has.Some.StartsWith($"error: {Relative(index)}").And.Some.Contains("does not match its checksum in txnindex.checksums"), r.ToString());
    }

    [Test]
    public void A_corrupted_txnindex_checksum_file_fails_naming_it()
    {
        string checksums = Path.Combine(PartitionDir(Scenario.Topic, 0), "txnindex.checksums");
        RawLog.FlipByte(checksums, new FileInfo(checksums).Length - 1);

        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(Lines(r.Out, "error:"), Has.Some.StartsWith($"error: {Relative(checksums)}").And.Some.Contains("checksum mismatch"), r.ToString());
    }

    [Test]
    public void A_corrupted_producer_snapshot_fails_naming_the_snapshot()
    {
        string snapshot = Directory.GetFiles(PartitionDir(Scenario.Topic, 0), "*.snapshot").Max()!;
        Assume.That(new FileInfo(snapshot).Length, Is.GreaterThan(6), "the snapshot has producer entries");
        RawLog.FlipByte(snapshot, new FileInfo(snapshot).Length - 1);

        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        string[] errors = Lines(r.Out, "error:");
        Assert.That(errors, Has.Length.EqualTo(1), r.ToString());
        Assert.That(errors[0], Does.StartWith($"error: {Relative(snapshot)}: Producer snapshot checksum mismatch"));
    }

    [Test]
    public void A_corrupted_topic_list_fails()
    {
        string meta = Path.Combine(DataDir, "topics.meta");
        RawLog.FlipByte(meta, new FileInfo(meta).Length - 3);
        CliResult r = Cli.Run("verify", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(Lines(r.Out, "error:"), Has.Some.StartsWith("error: topics.meta: Store metadata checksum mismatch"));
    }

    [Test]
    public void Verify_writes_nothing_on_a_good_store_and_on_a_corrupted_one()
    {
        SortedDictionary<string, string> before = Hashes.Of(DataDir);
        Assert.That(Cli.Run("verify", DataDir).ExitCode, Is.EqualTo(0));
        Assert.That(Hashes.Of(DataDir), Is.EqualTo(before));

        string segment = Segments(Scenario.Topic, 0)[0];
        (long position, int size, _) = RawLog.Batches(segment)[1];
        RawLog.FlipByte(segment, position + size - 1);
        string snapshot = Directory.GetFiles(PartitionDir(Scenario.Topic, 1), "*.snapshot").Max()!;
        RawLog.FlipByte(snapshot, 3);
        File.Delete(Path.Combine(DataDir, LogStore.CleanShutdownFileName)); // the last segments are then checked as after a crash
        using (var stream = new FileStream(Segments(Scenario.Topic, 1)[^1], FileMode.Append))
        {
            stream.Write([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 200, 255]); // a torn batch header
        }

        SortedDictionary<string, string> corrupted = Hashes.Of(DataDir);
        Assert.That(Cli.Run("verify", DataDir).ExitCode, Is.EqualTo(1));
        Assert.That(Hashes.Of(DataDir), Is.EqualTo(corrupted), "verify must not repair, truncate or create anything");
    }

    [Test]
    public void A_torn_tail_is_a_warning_after_an_unclean_close_and_an_error_after_a_clean_one()
    {
        string last = Segments(Scenario.Topic, 1)[^1];
        long length = new FileInfo(last).Length;
        using (var stream = new FileStream(last, FileMode.Append))
        {
            stream.Write([0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 1, 0, 255, 255, 255, 255, 2, 1, 2, 3]); // the start of a batch whose rest never arrived
        }

        CliResult clean = Cli.Run("verify", DataDir);
        Assert.That(clean.ExitCode, Is.EqualTo(1), clean.ToString());
        Assert.That(Lines(clean.Out, "error:"), Has.Some.StartsWith($"error: {Relative(last)}, position {length}: the last 20 bytes are not a whole batch"));

        File.Delete(Path.Combine(DataDir, LogStore.CleanShutdownFileName));
        CliResult unclean = Cli.Run("verify", DataDir);
        Assert.That(unclean.ExitCode, Is.EqualTo(0), unclean.ToString());
        Assert.That(unclean.Out, Does.Contain("Store: closed without a clean shutdown"));
        Assert.That(Lines(unclean.Out, "warning:"), Has.Some.StartsWith($"warning: {Relative(last)}, position {length}: torn write"));
    }

    [Test]
    public void Verify_on_a_store_that_is_open_warns_and_still_checks()
    {
        using (LogStore store = LogStore.Open(DataDir, Scenario.Options(TimeProvider.System)))
        {
            store.GetPartition(Scenario.Topic, 1).Append(new Records.Message(Scenario.Bytes("while-open")));
            CliResult r = Cli.Run("verify", DataDir);
            Assert.That(r.Error, Does.Contain("warning: the store is open by another process").And.Contain("results may be inconsistent"), r.ToString());
            Assert.That(r.Out, Does.Contain("Store: open by another process"));
            Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        }

        CliResult closed = Cli.Run("verify", DataDir);
        Assert.That(closed.Error, Is.Empty);
        Assert.That(closed.ExitCode, Is.EqualTo(0), closed.ToString());
    }

    [Test]
    public void Verify_of_a_missing_directory_is_a_usage_error()
    {
        CliResult r = Cli.Run("verify", Path.Combine(DataDir, "nope"));
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Error, Does.Contain("does not exist"));
    }
}
