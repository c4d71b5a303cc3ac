using System.Diagnostics;
using System.Text.Json;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Records;

/// <summary>
/// Our .log files read by an independent Kafka decoder (kafkajs' protocol code, in
/// ../shared/tools/kafka-decode). Runs only where that tool, Node.js and its node_modules are present:
/// <c>TXLOG_KAFKA_DECODE</c> names a ready copy (.ci/run prepares one when the tool is there), else the
/// tool is looked for in the parent directories.
/// </summary>
public class KafkaDecoderInteropTests
{
    private static string? FindDecoder()
    {
        if (Environment.GetEnvironmentVariable("TXLOG_KAFKA_DECODE") is { Length: > 0 } configured
            && File.Exists(Path.Combine(configured, "decode.js")) && Directory.Exists(Path.Combine(configured, "node_modules")))
        {
            return configured;
        }

        for (DirectoryInfo? d = new(TestContext.CurrentContext.TestDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "shared", "tools", "kafka-decode");
            if (File.Exists(Path.Combine(candidate, "decode.js")) && Directory.Exists(Path.Combine(candidate, "node_modules")))
            {
                return candidate;
            }
        }

        return null;
    }

    // Runs the decoder on the files; returns its exit code and output (one JSON line per file).
    private static async Task<(int ExitCode, string Output, string Errors)> DecodeAsync(string tool, IEnumerable<string> logs)
    {
        var start = new ProcessStartInfo("node") { WorkingDirectory = tool, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("decode.js");
        foreach (string log in logs)
        {
            start.ArgumentList.Add(log);
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Ignore("Node.js is not installed here.");
            throw; // not reached
        }

        using var started = process;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output, await errors);
    }

    [Test]
    public async Task Every_log_file_of_a_mixed_store_decodes_including_internal_topics_and_rolled_segments()
    {
        string? tool = FindDecoder();
        if (tool is null)
        {
            Assert.Ignore("../shared/tools/kafka-decode with node_modules is not available here.");
        }

        using var dir = new TempDirectory();
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.SegmentBytes = 4096; // several segments per partition
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("in", 2);
            store.CreateTopic("out");
            TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
            TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
            await using Producer producer = await TransactionalAsync(store, "mixed");
            for (int i = 0; i < 60; i++)
            {
                await store.GetPartition("in", i % 2).AppendAsync(Msg($"in-{i}"));
                StoreTransaction tx = store.BeginTransaction(producer);
                map.Put(tx.Maps, i % 7, i);
                await tx.ProduceAsync(new TopicPartition("out", 0), Msg($"out-{i}"));
                await tx.SendOffsetsAsync([new TopicPartitionOffset(new TopicPartition("in", i % 2), i / 2 + 1)], "g");
                if (i % 5 == 4)
                {
                    await tx.AbortAsync();
                }
                else
                {
                    await tx.CommitAsync();
                }
            }
        }

        string[] logs = Directory.GetFiles(dir.Path, "*.log", SearchOption.AllDirectories);
        Assert.That(logs.Length, Is.GreaterThan(6), "data, internal topics and rolled segments");
        (int exitCode, string output, string errors) = await DecodeAsync(tool!, logs);
        Assert.That(exitCode, Is.Zero, output + errors);
        int commits = 0, aborts = 0;
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using JsonDocument json = JsonDocument.Parse(line);
            Assert.That(json.RootElement.GetProperty("errors").GetArrayLength(), Is.Zero, line);
            commits += json.RootElement.GetProperty("control").GetProperty("commit").GetInt32();
            aborts += json.RootElement.GetProperty("control").GetProperty("abort").GetInt32();
        }

        // Each transaction has a marker on "out", the offsets partition and the redo partition.
        Assert.That(commits, Is.EqualTo(48 * 3), output);
        Assert.That(aborts, Is.GreaterThan(0), output);
    }

    [Test]
    public async Task An_independent_kafka_decoder_reads_data_transactional_and_control_batches()
    {
        string? tool = FindDecoder();
        if (tool is null)
        {
            Assert.Ignore("../shared/tools/kafka-decode with node_modules is not available here.");
        }

        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            p.Append([Msg("plain-1"), new TxLog.Records.Message(null, null), Msg("plain-3") with { Headers = [new TxLog.Records.RecordHeader("h", new byte[] { 1, 2 })] }]);
            await using Producer producer = await TransactionalAsync(store, "interop");
            producer.BeginTransaction();
            await producer.ProduceAsync(new TopicPartition("t", 0), Msg("committed"));
            await producer.CommitTransactionAsync();
            producer.BeginTransaction();
            await producer.ProduceAsync(new TopicPartition("t", 0), Msg("aborted"));
            await producer.AbortTransactionAsync();
        }

        string log = Path.Combine(dir.Path, "t-0", "00000000000000000000.log");
        (int exitCode, string output, string errors) = await DecodeAsync(tool!, [log]);
        Assert.That(exitCode, Is.Zero, output + errors);

        using JsonDocument json = JsonDocument.Parse(output.Trim().Split('\n')[0]);
        JsonElement root = json.RootElement;
        Assert.That(root.GetProperty("errors").GetArrayLength(), Is.Zero);
        Assert.That(root.GetProperty("records").GetInt32(), Is.EqualTo(5), "3 plain + 1 committed + 1 aborted data records");
        Assert.That(root.GetProperty("control").GetProperty("commit").GetInt32(), Is.EqualTo(1));
        Assert.That(root.GetProperty("control").GetProperty("abort").GetInt32(), Is.EqualTo(1));
        Assert.That(root.GetProperty("transactionalBatches").GetInt32(), Is.EqualTo(4), "2 data batches and 2 markers");
        Assert.That(root.GetProperty("nextOffset").GetString(), Is.EqualTo("7"));
    }
}
