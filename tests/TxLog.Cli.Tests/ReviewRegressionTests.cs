using System.Text;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.Cli.Tests;

/// <summary>Regressions found by a review of the tool: each test failed before its fix.</summary>
public sealed class ReviewRegressionTests
{
    private static string[] Lines(string output, string prefix) =>
        output.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).ToArray();

    [Test]
    public void Verify_fails_a_cleanly_closed_store_that_lost_its_last_segment()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { SegmentBytes = 4096, PreallocateBytes = 0 }))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            for (int i = 0; i < 60; i++)
            {
                p.Append(new Message(new byte[200]));
            }
        }

        string[] logs = Directory.GetFiles(Path.Combine(dir.Path, "t-0"), "*.log").Order(StringComparer.Ordinal).ToArray();
        Assume.That(logs, Has.Length.GreaterThanOrEqualTo(2));
        foreach (string ext in new[] { ".log", ".index", ".timeindex" })
        {
            File.Delete(Path.ChangeExtension(logs[^1], ext));
        }

        CliResult r = Cli.Run("verify", dir.Path);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(Lines(r.Out, "error:"), Has.Some.Contains("are missing from a cleanly closed store"), r.ToString());
    }

    [Test]
    public void Verify_calls_a_bad_crc_at_the_end_of_a_crashed_store_a_torn_write_not_an_error()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path)) // default preallocation: zeros follow the data
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            for (int i = 0; i < 20; i++)
            {
                p.Append(new Message(Encoding.UTF8.GetBytes($"value-{i}")));
            }

            p.FlushAsync().AsTask().Wait();
            string segment = Directory.GetFiles(Path.Combine(dir.Path, "t-0"), "*.log").Single();
            long dataEnd = RawLog.Batches(segment)[^1] is var last ? last.Position + last.Size : 0;
            // A crash image: copy the files while the store is open (no clean-shutdown marker), then tear
            // the last batch's end inside the preallocated space.
            CopyDirectory(dir.Path, dir.Path + "-crash");
            string copy = Path.Combine(dir.Path + "-crash", "t-0", Path.GetFileName(segment));
            using FileStream f = new(copy, FileMode.Open);
            f.Position = dataEnd - 8;
            f.Write(new byte[8]);
        }

        string crash = dir.Path + "-crash";
        try
        {
            CliResult r = Cli.Run("verify", crash);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
            Assert.That(Lines(r.Out, "warning:"), Has.Some.Contains("torn write"), r.ToString());
            using LogStore reopened = LogStore.Open(crash); // and recovery agrees: it cuts the torn batch
            Assert.That(reopened.GetPartition("t", 0).LogEndOffset, Is.EqualTo(19));
        }
        finally
        {
            Directory.Delete(crash, recursive: true);
        }
    }

    [Test]
    public async Task Verify_accepts_a_txnindex_entry_of_a_transaction_whose_start_retention_removed()
    {
        using var dir = new TempDirectory();
        var options = new LogStoreOptions { SegmentBytes = 1024, PreallocateBytes = 0, RetentionBytes = 2048, Durability = DurabilityMode.None };
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("r");
            var tp = new TopicPartition("r", 0);
            await using Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "ret" });
            await producer.InitTransactionsAsync();
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, new Message(new byte[100])); // offset 0: the transaction starts here
            LogPartition p = store.GetPartition("r", 0);
            for (int i = 0; i < 40; i++)
            {
                p.Append(new Message(new byte[200])); // rolls several segments
            }

            await producer.ProduceAsync(tp, new Message(new byte[100]));
            await producer.AbortTransactionAsync();
            Assert.That(store.EnforceRetention(), Is.GreaterThan(0));
            Assume.That(p.LogStartOffset, Is.GreaterThan(0));
        }

        CliResult r = Cli.Run("verify", dir.Path);
        Assert.That(Lines(r.Out, "error:"), Is.Empty, r.ToString());
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
    }

    [Test]
    public void Topics_reports_a_lost_topic_list_instead_of_an_empty_store()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path))
        {
            store.CreateTopic("t");
            store.GetPartition("t", 0).Append(new Message(new byte[10]));
        }

        File.Delete(Path.Combine(dir.Path, "topics.meta"));
        CliResult r = Cli.Run("topics", dir.Path);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.Error, Does.Contain("topic list is lost"));
    }

    [Test]
    public void Dump_warns_when_the_store_is_open()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path);
        store.CreateTopic("t");
        store.GetPartition("t", 0).Append(new Message(new byte[10]));
        CliResult r = Cli.Run("dump", Path.Combine(dir.Path, "t-0"));
        Assert.That(r.Error, Does.Contain("the store is open by another process"), r.ToString());
    }

    [Test]
    public void A_file_given_as_the_data_directory_is_named_as_a_file()
    {
        using var dir = new TempDirectory();
        string file = Path.Combine(dir.Path, "not-a-dir");
        File.WriteAllText(file, "x");
        CliResult r = Cli.Run("verify", file);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.Error, Does.Contain("is a file"));
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from))
        {
            if (Path.GetFileName(file) != LogStore.LockFileName) // held by the open store; not part of the image
            {
                File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
            }
        }

        foreach (string sub in Directory.GetDirectories(from))
        {
            CopyDirectory(sub, Path.Combine(to, Path.GetFileName(sub)));
        }
    }
}
