using System.Diagnostics;
using System.Text.Json;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Records;

/// <summary>
/// Our .log files read by an independent Kafka decoder (kafkajs' protocol code, in
/// ../shared/tools/kafka-decode). Runs only where that tool, Node.js and its node_modules are present.
/// </summary>
public class KafkaDecoderInteropTests
{
    private static string? FindDecoder()
    {
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
        var start = new ProcessStartInfo("node", ["decode.js", log]) { WorkingDirectory = tool, RedirectStandardOutput = true, RedirectStandardError = true };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Ignore("Node.js is not installed here.");
            return;
        }

        using var started = process;
        string output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.That(process.ExitCode, Is.Zero, output + await process.StandardError.ReadToEndAsync());

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
