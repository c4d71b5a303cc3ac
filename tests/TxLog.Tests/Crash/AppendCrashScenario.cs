using System.Globalization;
using TxLog.CrashChild;
using TxLog.Records;

namespace TxLog.Tests.Crash;

/// <summary>
/// The checker of the child's <c>append</c> mode: concurrent writers in group commit mode, each
/// printing <c>ACK writer seq offset</c> once an append is acknowledged (fsynced). After each kill it
/// reopens the store in the test process (crash recovery) and checks:
/// <list type="bullet">
/// <item>offsets are dense from 0 to the log end offset, and every record is intact
/// (<see cref="CrashRecord.TryCheck"/>);</item>
/// <item>every acknowledged record is at its acknowledged offset;</item>
/// <item>what earlier rounds left is unchanged, and this round's records all come after it;</item>
/// <item>per writer, this round's sequences are exactly 0, 1, 2, ... in offset order, reaching at least
/// the last acknowledged one and at most one batch (the one in flight at the kill) beyond it.</item>
/// </list>
/// </summary>
internal sealed class AppendCrashScenario(string dataDirectory) : ICrashScenario
{
    public const string Topic = "crash";

    private readonly List<(int Run, int Writer, long Sequence)> _log = [];  // the log as last checked, by offset
    private long _roundStart;                                               // log end offset before the current round
    private int _acknowledged;

    public int Writers { get; init; } = 4;

    public int MaxBatchRecords { get; init; } = 3;

    /// <summary>
    /// Segment size of the even rounds: small, so that kills land in and around segment rolls. Odd
    /// rounds use the default (1 GiB), where a group-commit partition writes zeros ahead of its data,
    /// so kills leave a tail of zeros for recovery to cut.
    /// </summary>
    public long SmallSegmentBytes { get; init; } = 64 * 1024;

    /// <summary>Acknowledged appends seen over all rounds.</summary>
    public int Acknowledged => _acknowledged;

    public string Mode => "append";

    public IEnumerable<string> ChildOptions(int round) =>
    [
        "--run", Text(round),
        "--writers", Text(Writers),
        "--max-batch-records", Text(MaxBatchRecords),
        "--topic", Topic,
        .. round % 2 == 0 ? ["--segment-bytes", Text(SmallSegmentBytes)] : Array.Empty<string>(),
    ];

    public void BeforeRound(int round) => _roundStart = _log.Count;

    public void AfterRound(CrashRound round)
    {
        string where = $"round {round.Number}";
        List<(int Writer, long Sequence, long Offset)> acks = ParseAcks(round);
        _acknowledged += acks.Count;

        List<(int Run, int Writer, long Sequence)> log;
        string recovery;
        using (LogStore store = LogStore.Open(dataDirectory))
        {
            recovery = $"{store.Recovery.TruncatedBytes} torn bytes cut, {store.GetPartition(Topic, 0).SegmentCount} segments";
            Assert.That(store.Recovery.CleanShutdown, Is.False, $"{where}: the killed child left no clean-shutdown marker");
            LogPartition partition = store.GetPartition(Topic, 0);
            Assert.That(partition.HighWatermark, Is.EqualTo(partition.LogEndOffset), $"{where}: everything found at open is durable");
            log = ReadLog(partition, where);
            Assert.That(log, Has.Count.EqualTo(partition.LogEndOffset), $"{where}: records dense from 0 to the log end offset");
        }

        // Earlier rounds' records stay as they were; this round's come after them.
        Assert.That(log.Count, Is.GreaterThanOrEqualTo(_log.Count), $"{where}: the log shrank below what earlier rounds left");
        for (int offset = 0; offset < _log.Count; offset++)
        {
            Assert.That(log[offset], Is.EqualTo(_log[offset]), $"{where}: record at {offset}, left by an earlier round, changed");
        }

        for (long offset = _roundStart; offset < log.Count; offset++)
        {
            Assert.That(log[(int)offset].Run, Is.EqualTo(round.Number), $"{where}: record at {offset} after the earlier rounds' end {_roundStart} is from run {log[(int)offset].Run}");
        }

        // Every acknowledged record, at its acknowledged offset.
        var lastAcked = new Dictionary<int, long>();
        foreach ((int writer, long sequence, long offset) in acks)
        {
            Assert.That(offset, Is.GreaterThanOrEqualTo(_roundStart).And.LessThan(log.Count), $"{where}: ACK {writer} {sequence} {offset} is outside this round's part of the log");
            Assert.That(log[(int)offset], Is.EqualTo((round.Number, writer, sequence)), $"{where}: record at acknowledged offset {offset}");
            lastAcked[writer] = Math.Max(lastAcked.GetValueOrDefault(writer, -1), sequence);
        }

        // Per writer: 0, 1, 2, ... in offset order, up to the last acknowledged one and at most one batch beyond.
        var nextSequence = new Dictionary<int, long>();
        for (long offset = _roundStart; offset < log.Count; offset++)
        {
            (_, int writer, long sequence) = log[(int)offset];
            long expected = nextSequence.GetValueOrDefault(writer, 0);
            Assert.That(sequence, Is.EqualTo(expected), $"{where}: writer {writer}'s record at {offset} is out of order");
            nextSequence[writer] = expected + 1;
        }

        for (int writer = 0; writer < Writers; writer++)
        {
            long written = nextSequence.GetValueOrDefault(writer, 0);
            long acked = lastAcked.GetValueOrDefault(writer, -1) + 1;
            Assert.That(written, Is.GreaterThanOrEqualTo(acked), $"{where}: writer {writer} had {acked} records acknowledged but {written} are in the log");
            Assert.That(written - acked, Is.LessThanOrEqualTo(MaxBatchRecords), $"{where}: writer {writer} has more records beyond its last acknowledgement than one batch");
        }

        TestContext.Progress.WriteLine($"{where}: {acks.Count} acknowledged, log end offset {log.Count} (round started at {_roundStart}); recovery: {recovery}");
        _log.Clear();
        _log.AddRange(log);
    }

    private static List<(int Writer, long Sequence, long Offset)> ParseAcks(CrashRound round)
    {
        var acks = new List<(int, long, long)>();
        foreach (string line in round.Lines)
        {
            if (line == "READY")
            {
                continue;
            }

            string[] parts = line.Split(' ');
            if (parts.Length != 4 || parts[0] != "ACK"
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int writer)
                || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out long sequence)
                || !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out long offset))
            {
                Assert.Fail($"round {round.Number}: unexpected line from the child: '{line}'; stderr: {round.StandardError}");
                continue;
            }

            acks.Add((writer, sequence, offset));
        }

        return acks;
    }

    private static List<(int Run, int Writer, long Sequence)> ReadLog(LogPartition partition, string where)
    {
        var log = new List<(int, int, long)>();
        using LogReader reader = partition.OpenReader(0);
        while (reader.TryRead(out Record record))
        {
            Assert.That(record.Offset, Is.EqualTo(log.Count), $"{where}: offsets are dense");
            string? headerKey = null;
            ReadOnlySpan<byte> headerValue = default;
            int headers = 0;
            foreach (RecordHeaderView header in record.Headers)
            {
                headerKey = System.Text.Encoding.UTF8.GetString(header.Key);
                headerValue = header.Value;
                headers++;
            }

            if (headers != 1)
            {
                Assert.Fail($"{where}: record at {record.Offset} has {headers} headers");
            }

            if (!CrashRecord.TryCheck(record.Key, record.Value, headerKey, headerValue, out int run, out int writer, out long sequence, out string? problem))
            {
                Assert.Fail($"{where}: record at {record.Offset} is damaged: {problem}");
            }

            log.Add((run, writer, sequence));
        }

        return log;
    }

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}
