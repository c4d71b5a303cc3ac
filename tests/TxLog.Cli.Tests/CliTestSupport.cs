using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using TxLog.Cli;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.Cli.Tests;

/// <summary>What one in-process run of the tool printed and returned.</summary>
public sealed record CliResult(int ExitCode, string Out, string Error)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Out}\n--- stderr\n{Error}";

    /// <summary>The cells of the data rows of an ASCII table (header row excluded).</summary>
    public List<string[]> Rows()
    {
        var rows = new List<string[]>();
        bool header = true;
        foreach (string line in Out.Split('\n'))
        {
            string l = line.TrimEnd('\r');
            if (!l.StartsWith('|'))
            {
                continue;
            }

            if (l.Trim('|', '-', '+').Length == 0)
            {
                continue;
            }

            string[] cells = l.Trim('|').Split('|').Select(c => c.Trim()).ToArray();
            if (header)
            {
                header = false;
                continue;
            }

            rows.Add(cells);
        }

        return rows;
    }
}

public static class Cli
{
    /// <summary>Runs the tool in-process with the given clock and standard input.</summary>
    public static CliResult RunWith(TimeProvider? clock, string? input, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var context = new CliContext(stdout, stderr, new StringReader(input ?? ""), clock ?? TimeProvider.System, interactive: false);
        int code = Program.Run(args, context);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    public static CliResult Run(params string[] args) => RunWith(null, null, args);
}

/// <summary>SHA-256 of every file under a directory (relative path → hash), to prove a command wrote nothing.</summary>
public static class Hashes
{
    public static SortedDictionary<string, string> Of(string directory)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (string file in Directory.GetFiles(directory, "*", SearchOption.AllDirectories))
        {
            using FileStream stream = new(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            result[System.IO.Path.GetRelativePath(directory, file)] = Convert.ToHexString(SHA256.HashData(stream));
        }

        return result;
    }
}

/// <summary>Batch positions in a .log file, read with the layout of docs/format.md (independent of the tool).</summary>
public static class RawLog
{
    public static List<(long Position, int Size, long BaseOffset)> Batches(string logPath)
    {
        byte[] bytes = File.ReadAllBytes(logPath);
        var list = new List<(long, int, long)>();
        int p = 0;
        while (p + 12 <= bytes.Length)
        {
            long baseOffset = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(p));
            int size = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(p + 8)) + 12;
            if (size < 61 || p + size > bytes.Length)
            {
                break;
            }

            list.Add((p, size, baseOffset));
            p += size;
        }

        return list;
    }

    public static void FlipByte(string path, long position)
    {
        using FileStream stream = new(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = position;
        int b = stream.ReadByte();
        stream.Position = position;
        stream.WriteByte((byte)(b ^ 0x5A));
    }
}

/// <summary>Facts about the scenario store, taken from the library's own API while it was built.</summary>
public sealed class ScenarioFacts
{
    public DateTimeOffset Start { get; init; }

    public DateTimeOffset HangingStart { get; set; }

    public long CommittedProducerId { get; set; }

    public long CommittedFirstOffset { get; set; }

    public long CommitMarkerOffset { get; set; }

    public long AbortedProducerId { get; set; }

    public long AbortedFirstOffset { get; set; }

    public long AbortMarkerOffset { get; set; }

    public long HangingProducerId { get; set; }

    public long HangingFirstOffset { get; set; }

    public long AfterHangingOffset { get; set; }

    public long Orders0End { get; set; }

    public long Orders1End { get; set; }

    public int Orders0Segments { get; set; }
}

/// <summary>
/// Builds (once) a closed store with: topic "orders" (2 partitions, small segments, so orders-0 has
/// several) and "events"; plain records; a committed, an aborted and an open (hanging) transaction;
/// consumer-group offsets committed plainly, in a committed transaction, in an aborted one and in the
/// open one. Tests copy it into their own directory.
/// </summary>
public static class Scenario
{
    public const string Topic = "orders";
    public const string Group = "billing";
    public const long PlainCommittedOffset = 5;     // billing / orders-0, committed outside any transaction
    public const long TransactionalOffset = 1;      // billing / orders-1, committed in a committed transaction
    public const long AbortedOffset = 9;            // billing / orders-0, sent to the aborted transaction
    public const long HangingOffset = 7;            // billing / orders-0, sent to the open transaction

    private static readonly Lazy<(string Path, ScenarioFacts Facts)> Template = new(Build, LazyThreadSafetyMode.ExecutionAndPublication);

    public static ScenarioFacts Facts => Template.Value.Facts;

    /// <summary>Deletes the template (end of the test run).</summary>
    public static void DeleteTemplate()
    {
        if (Template.IsValueCreated)
        {
            try
            {
                Directory.Delete(Template.Value.Path, recursive: true);
            }
            catch (IOException)
            {
                // Best effort.
            }
        }
    }

    public static LogStoreOptions Options(TimeProvider clock) => new()
    {
        Durability = DurabilityMode.None,
        TimeProvider = clock,
        IndexIntervalBytes = 100,
        TransactionTimeoutCheckInterval = TimeSpan.FromHours(1),
        PreallocateBytes = 0,
    };

    /// <summary>Copies the template store into <paramref name="target"/>.</summary>
    public static void CopyTo(string target)
    {
        string source = Template.Value.Path;
        foreach (string file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            string destination = System.IO.Path.Combine(target, System.IO.Path.GetRelativePath(source, file));
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(destination)!);
            File.Copy(file, destination, overwrite: true);
        }
    }

    public static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    private static (string, ScenarioFacts) Build()
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "txlog-cli-tests", "template-" + Guid.NewGuid().ToString("N"));
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var facts = new ScenarioFacts { Start = clock.GetUtcNow() };
        BuildAsync(path, clock, facts).GetAwaiter().GetResult();
        return (path, facts);
    }

    private static async Task BuildAsync(string path, ManualClock clock, ScenarioFacts facts)
    {
        var orders0 = new TopicPartition(Topic, 0);
        var orders1 = new TopicPartition(Topic, 1);
        LogStore store = LogStore.Open(path, Options(clock));
        try
        {
            store.CreateTopic(Topic, 2, new TopicOptions { SegmentBytes = 600 });
            store.CreateTopic("events", 1);
            LogPartition p0 = store.GetPartition(Topic, 0);
            LogPartition p1 = store.GetPartition(Topic, 1);
            for (int i = 0; i < 10; i++)
            {
                p0.Append(new Message(null, Bytes("plain-" + i)));
                clock.Advance(TimeSpan.FromSeconds(1));
            }

            store.GetPartition("events", 0).Append(new Message(Bytes("k"), [0x00, 0x01, 0xFF]) { Headers = [new RecordHeader("h", Bytes("v"))] });

            // A committed transaction over two partitions.
            await using (Producer committed = await Transactional(store, "tx-committed"))
            {
                committed.BeginTransaction();
                DeliveryResult first = await committed.ProduceAsync(orders0, [new Message(Bytes("c1")), new Message(Bytes("c2"))]);
                await committed.ProduceAsync(orders1, new Message(Bytes("c3")));
                await committed.CommitTransactionAsync();
                facts.CommittedProducerId = committed.ProducerId;
                facts.CommittedFirstOffset = first.Offset;
                facts.CommitMarkerOffset = p0.LogEndOffset - 1;
            }

            // Offsets outside any transaction, then in a committed transaction.
            using (Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = Group }))
            {
                await consumer.Commit([new TopicPartitionOffset(orders0, PlainCommittedOffset)]);
            }

            await using (Producer offsets = await Transactional(store, "tx-offsets"))
            {
                offsets.BeginTransaction();
                await offsets.ProduceAsync(orders1, new Message(Bytes("o1")));
                await offsets.SendOffsetsToTransactionAsync([new TopicPartitionOffset(orders1, TransactionalOffset)], Group);
                await offsets.CommitTransactionAsync();
            }

            // An aborted transaction, with offsets that must not count.
            await using (Producer aborted = await Transactional(store, "tx-aborted"))
            {
                aborted.BeginTransaction();
                DeliveryResult first = await aborted.ProduceAsync(orders0, [new Message(Bytes("a1")), new Message(Bytes("a2"))]);
                await aborted.SendOffsetsToTransactionAsync([new TopicPartitionOffset(orders0, AbortedOffset)], Group);
                await aborted.AbortTransactionAsync();
                facts.AbortedProducerId = aborted.ProducerId;
                facts.AbortedFirstOffset = first.Offset;
                facts.AbortMarkerOffset = p0.LogEndOffset - 1;
            }

            // An open transaction, left hanging when the store closes.
            clock.Advance(TimeSpan.FromMinutes(10));
            facts.HangingStart = clock.GetUtcNow();
            Producer hanging = await Transactional(store, "tx-hanging");
            hanging.BeginTransaction();
            DeliveryResult h = await hanging.ProduceAsync(orders0, [new Message(Bytes("h1")), new Message(Bytes("h2"))]);
            await hanging.SendOffsetsToTransactionAsync([new TopicPartitionOffset(orders0, HangingOffset)], Group);
            facts.HangingProducerId = hanging.ProducerId;
            facts.HangingFirstOffset = h.Offset;
            clock.Advance(TimeSpan.FromSeconds(5));
            facts.AfterHangingOffset = p0.Append(new Message(null, Bytes("after-hanging"))).BaseOffset;
            facts.Orders0End = p0.LogEndOffset;
            facts.Orders1End = p1.LogEndOffset;
        }
        finally
        {
            store.Dispose();
        }

        facts.Orders0Segments = Directory.GetFiles(System.IO.Path.Combine(path, Topic + "-0"), "*.log").Length;
    }

    private static async Task<Producer> Transactional(LogStore store, string id)
    {
        Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = id });
        await producer.InitTransactionsAsync();
        return producer;
    }
}

/// <summary>Base of the tests that work on a private copy of the scenario store.</summary>
public abstract class ScenarioTest
{
    private TempDirectory? _directory;

    protected string DataDir => _directory!.Path;

    protected static ScenarioFacts Facts => Scenario.Facts;

    [SetUp]
    public void CopyScenario()
    {
        _directory = new TempDirectory();
        Scenario.CopyTo(_directory.Path);
    }

    [TearDown]
    public void DeleteCopy() => _directory?.Dispose();

    protected string PartitionDir(string topic, int partition) => System.IO.Path.Combine(DataDir, $"{topic}-{partition}");

    protected string[] Segments(string topic, int partition) =>
        Directory.GetFiles(PartitionDir(topic, partition), "*.log").Order(StringComparer.Ordinal).ToArray();

    /// <summary>A clock at the hanging transaction's start plus <paramref name="after"/>.</summary>
    protected static ManualClock ClockAfterHangingStart(TimeSpan after) => new(Facts.HangingStart + after);
}

[SetUpFixture]
public sealed class TemplateCleanup
{
    [OneTimeTearDown]
    public void DeleteTemplate() => Scenario.DeleteTemplate();
}
