using System.Globalization;

namespace TxLog.Cli.Tests;

public sealed class DumpTests : ScenarioTest
{
    private static string Line(string output, string startsWith) =>
        output.Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(l => l.StartsWith(startsWith, StringComparison.Ordinal))
        ?? throw new AssertionException($"no line starting with '{startsWith}' in:\n{output}");

    private static string Batch(string output, long baseOffset) => Line(output, $"baseOffset: {baseOffset.ToString(CultureInfo.InvariantCulture)} ");

    [Test]
    public void Dump_of_a_partition_directory_lists_every_batch_with_offsets_producer_flags_markers_and_crc()
    {
        CliResult r = Cli.Run("dump", PartitionDir(Scenario.Topic, 0));
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());

        // A plain batch: no producer, not transactional.
        Assert.That(Batch(r.Out, 0), Does.Contain("lastOffset: 0 count: 1").And.Contain("producerId: -1 producerEpoch: -1 baseSequence: -1")
            .And.Contain("isTransactional: false isControl: false").And.EndWith("crc: ok"));

        // The committed transaction's data batch (two records) and its COMMIT marker.
        Assert.That(Batch(r.Out, Facts.CommittedFirstOffset), Does.Contain($"lastOffset: {Facts.CommittedFirstOffset + 1} count: 2")
            .And.Contain($"producerId: {Facts.CommittedProducerId} ").And.Contain("baseSequence: 0").And.Contain("isTransactional: true isControl: false"));
        Assert.That(Batch(r.Out, Facts.CommitMarkerOffset), Does.Contain("isTransactional: true isControl: true marker: COMMIT")
            .And.Contain($"producerId: {Facts.CommittedProducerId} "));

        // The aborted transaction's ABORT marker.
        Assert.That(Batch(r.Out, Facts.AbortMarkerOffset), Does.Contain("isControl: true marker: ABORT").And.Contain($"producerId: {Facts.AbortedProducerId} "));

        // The open transaction has data but no marker.
        Assert.That(Batch(r.Out, Facts.HangingFirstOffset), Does.Contain($"producerId: {Facts.HangingProducerId} ").And.Contain("isTransactional: true isControl: false"));
        Assert.That(r.Out.Split('\n').Count(l => l.Contains($"producerId: {Facts.HangingProducerId} ", StringComparison.Ordinal) && l.Contains("marker:", StringComparison.Ordinal)), Is.Zero);

        // Every segment of the partition is dumped, in order.
        string[] segments = Segments(Scenario.Topic, 0);
        Assert.That(segments, Has.Length.GreaterThan(1), "the scenario should roll orders-0");
        int[] dumpedAt = segments.Select(s => r.Out.IndexOf("Dumping " + s, StringComparison.Ordinal)).ToArray();
        Assert.That(dumpedAt, Has.All.GreaterThanOrEqualTo(0));
        Assert.That(dumpedAt, Is.Ordered);
        Assert.That(r.Out, Does.Not.Contain("crc: BAD"));
    }

    [Test]
    public void Dump_of_txnindex_checksums_lists_each_segments_entry_count_and_crc()
    {
        string checksums = Path.Combine(PartitionDir(Scenario.Topic, 0), "txnindex.checksums");
        CliResult r = Cli.Run("dump", checksums);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        Assert.That(Line(r.Out, "version: "), Does.StartWith("version: 1 crc: ok segments: " + Segments(Scenario.Topic, 0).Length.ToString(CultureInfo.InvariantCulture)));
        Assert.That(Line(r.Out, "segment: 0 "), Does.StartWith("segment: 0 entries: "));

        RawLog.FlipByte(checksums, new FileInfo(checksums).Length - 1);
        CliResult bad = Cli.Run("dump", checksums);
        Assert.That(bad.ExitCode, Is.EqualTo(1), bad.ToString());
        Assert.That(bad.Out, Does.Contain("BAD: Transaction index checksums: checksum mismatch"));
    }

    [Test]
    public void Records_prints_offsets_keys_and_values_and_the_marker_type_of_control_records()
    {
        CliResult r = Cli.Run("dump", PartitionDir(Scenario.Topic, 0), "--records");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        Assert.That(Line(r.Out, "| offset: 3 "), Does.Contain("key: null value: plain-3"));
        Assert.That(Line(r.Out, $"| offset: {Facts.CommittedFirstOffset + 1} "), Does.Contain("value: c2"));
        Assert.That(Line(r.Out, $"| offset: {Facts.CommitMarkerOffset} "), Does.Contain("endTxnMarker: COMMIT coordinatorEpoch: 0"));
        Assert.That(Line(r.Out, $"| offset: {Facts.AbortMarkerOffset} "), Does.Contain("endTxnMarker: ABORT"));
        Assert.That(Line(r.Out, $"| offset: {Facts.AfterHangingOffset} "), Does.Contain("value: after-hanging"));
    }

    [Test]
    public void Format_hex_prints_bytes_as_hex_and_auto_falls_back_to_hex_for_binary_values()
    {
        string segment = Segments(Scenario.Topic, 0)[0];
        CliResult hex = Cli.Run("dump", segment, "--records", "--format", "hex");
        Assert.That(Line(hex.Out, "| offset: 0 "), Does.Contain("value: 0x" + Convert.ToHexStringLower("plain-0"u8)));

        // "events" holds one record with a text key, the binary value 00 01 FF and a header.
        CliResult auto = Cli.Run("dump", PartitionDir("events", 0), "--records");
        Assert.That(Line(auto.Out, "| offset: 0 "), Does.Contain("key: k value: 0x0001ff headers: [h=v]"));
        CliResult utf8 = Cli.Run("dump", PartitionDir("events", 0), "--records", "--format", "utf8");
        Assert.That(Line(utf8.Out, "| offset: 0 "), Does.Contain("key: k value: \\u0000\\u0001\uFFFD"));
    }

    [Test]
    public void A_torn_tail_is_reported_and_the_batches_before_it_are_still_listed()
    {
        string segment = Segments(Scenario.Topic, 1)[^1];
        List<(long Position, int Size, long BaseOffset)> batches = RawLog.Batches(segment);
        byte[] last = File.ReadAllBytes(segment).AsSpan((int)batches[^1].Position, batches[^1].Size).ToArray();
        using (var stream = new FileStream(segment, FileMode.Append))
        {
            stream.Write(last, 0, last.Length - 7); // a copy of the last batch, cut short
        }

        long tornAt = batches[^1].Position + batches[^1].Size;
        CliResult r = Cli.Run("dump", segment);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.Out, Does.Contain($"position: {tornAt} torn tail: the last {last.Length - 7} bytes are not a whole batch"));
        Assert.That(Batch(r.Out, batches[^1].BaseOffset), Does.EndWith("crc: ok"));
    }

    [Test]
    public void A_bad_crc_and_garbage_in_the_middle_are_reported_and_the_dump_goes_on()
    {
        string segment = Segments(Scenario.Topic, 0)[0];
        List<(long Position, int Size, long BaseOffset)> batches = RawLog.Batches(segment);
        Assert.That(batches, Has.Count.GreaterThanOrEqualTo(4));
        RawLog.FlipByte(segment, batches[1].Position + batches[1].Size - 2); // inside the records: CRC fails
        RawLog.FlipByte(segment, batches[2].Position + 16);                   // the magic byte: not a batch at all

        CliResult r = Cli.Run("dump", segment);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(Batch(r.Out, batches[1].BaseOffset), Does.Contain("crc: BAD"));
        Assert.That(r.Out, Does.Contain($"position: {batches[2].Position} {batches[2].Size} bytes of invalid data (BadMagic); the next valid batch starts at position {batches[3].Position}"));
        Assert.That(Batch(r.Out, batches[3].BaseOffset), Does.EndWith("crc: ok"));
    }

    [Test]
    public void Preallocated_zeros_after_the_data_are_not_damage()
    {
        string segment = Segments("events", 0)[0];
        long length = new FileInfo(segment).Length;
        using (var stream = new FileStream(segment, FileMode.Append))
        {
            stream.Write(new byte[4096]);
        }

        CliResult r = Cli.Run("dump", segment);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        Assert.That(r.Out, Does.Contain($"position: {length} 4096 bytes of zeros after the data"));
    }

    [Test]
    public void Index_and_snapshot_files_are_dumped_too()
    {
        string segment = Segments(Scenario.Topic, 0)[0];
        CliResult index = Cli.Run("dump", Path.ChangeExtension(segment, ".index"));
        Assert.That(index.ExitCode, Is.EqualTo(0), index.ToString());
        List<(long Position, int Size, long BaseOffset)> batches = RawLog.Batches(segment);
        string first = index.Out.Split('\n').First(l => l.StartsWith("offset: ", StringComparison.Ordinal));
        long position = long.Parse(first.Split(' ')[3], CultureInfo.InvariantCulture);
        Assert.That(batches.Select(b => b.Position), Does.Contain(position), "an index entry points at a batch start");

        string snapshot = Directory.GetFiles(PartitionDir(Scenario.Topic, 0), "*.snapshot").Max()!;
        CliResult snap = Cli.Run("dump", snapshot);
        Assert.That(snap.ExitCode, Is.EqualTo(0), snap.ToString());
        Assert.That(snap.Out, Does.Contain("crc: ok").And.Contain($"producerId: {Facts.HangingProducerId} ").And.Contain($"currentTxnFirstOffset: {Facts.HangingFirstOffset}"));
    }
}
