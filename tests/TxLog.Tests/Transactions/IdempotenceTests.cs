using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Storage;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

public class IdempotenceTests
{
    private const long Pid = 4242;

    [Test]
    public void A_retry_of_any_of_the_last_five_batches_gets_its_original_offsets_and_is_not_written()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        var originals = new List<AppendResult>();
        for (int batch = 0; batch < 6; batch++)
        {
            originals.Add(AppendRaw(store, p, Pid, 0, batch * 2, false, $"b{batch}r0", $"b{batch}r1")!.Value);
        }

        long end = p.LogEndOffset;
        for (int batch = 1; batch < 6; batch++)
        {
            AppendResult retry = AppendRaw(store, p, Pid, 0, batch * 2, false, $"b{batch}r0", $"b{batch}r1")!.Value;
            Assert.That(retry.IsDuplicate, Is.True);
            Assert.That((retry.BaseOffset, retry.LastOffset), Is.EqualTo((originals[batch].BaseOffset, originals[batch].LastOffset)));
        }

        Assert.That(p.LogEndOffset, Is.EqualTo(end), "nothing was written again");

        // The first batch fell out of the five remembered: its retry is out of order.
        OutOfOrderSequenceException e = Assert.Throws<OutOfOrderSequenceException>(() => AppendRaw(store, p, Pid, 0, 0, false, "b0r0", "b0r1"))!;
        Assert.That((e.ExpectedSequence, e.ActualSequence), Is.EqualTo((12, 0)));
        Assert.That(p.LogEndOffset, Is.EqualTo(end));
    }

    [Test]
    public void A_sequence_gap_fails_and_writes_nothing()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        AppendRaw(store, p, Pid, 0, 0, false, "a");
        Assert.Throws<OutOfOrderSequenceException>(() => AppendRaw(store, p, Pid, 0, 2, false, "gap"));
        Assert.Throws<OutOfOrderSequenceException>(() => AppendRaw(store, p, Pid + 1, 0, 5, false, "a new producer starts at 0"));
        Assert.That(p.LogEndOffset, Is.EqualTo(1));
        Assert.That(AppendRaw(store, p, Pid, 0, 1, false, "b")!.Value.BaseOffset, Is.EqualTo(1));
    }

    [Test]
    public void Sequences_wrap_from_int_MaxValue_to_zero()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);

        // Bring the producer near the top by hand: a batch of sequences int.MaxValue - 4 .. int.MaxValue - 2.
        p.ProducerState.Update(new ProducerBatchHeader(Pid, 0, int.MaxValue - 4, 2, false, false, default, -1, 0), 0, 2, 0);
        AppendResult top = AppendRaw(store, p, Pid, 0, int.MaxValue - 1, false, "max-1", "max")!.Value;
        AppendResult wrapped = AppendRaw(store, p, Pid, 0, 0, false, "zero")!.Value;
        Assert.That(wrapped.BaseOffset, Is.EqualTo(top.LastOffset + 1));
        Assert.That(AppendRaw(store, p, Pid, 0, 0, false, "zero")!.Value.IsDuplicate, Is.True, "the wrapped batch is remembered");
        Assert.Throws<OutOfOrderSequenceException>(() => AppendRaw(store, p, Pid, 0, int.MaxValue, false, "stale"));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Duplicates_are_still_detected_after_a_reopen(bool clean)
    {
        using var dir = new TempDirectory();
        var originals = new List<AppendResult>();
        using (LogStore store = LogStore.Open(dir.Path, Options(Durability.DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            for (int batch = 0; batch < 5; batch++)
            {
                originals.Add(AppendRaw(store, p, Pid, 3, batch, false, $"v{batch}")!.Value);
            }

            p.FlushAsync().AsTask().Wait(Tx.Timeout);
            if (!clean)
            {
                using var image = new TempDirectory();
                CopyImage(dir.Path, image.Path);
                CheckAfterReopen(image.Path, originals);
                return;
            }
        }

        CheckAfterReopen(dir.Path, originals);
    }

    private static void CheckAfterReopen(string path, List<AppendResult> originals)
    {
        using LogStore store = LogStore.Open(path, Options());
        LogPartition p = store.GetPartition("t", 0);
        for (int batch = 0; batch < 5; batch++)
        {
            AppendResult retry = AppendRaw(store, p, Pid, 3, batch, false, $"v{batch}")!.Value;
            Assert.That(retry.IsDuplicate, Is.True, $"batch {batch}");
            Assert.That(retry.BaseOffset, Is.EqualTo(originals[batch].BaseOffset));
        }

        Assert.That(p.LogEndOffset, Is.EqualTo(5));
        Assert.Throws<OutOfOrderSequenceException>(() => AppendRaw(store, p, Pid, 3, 7, false, "gap"));
        Assert.Throws<ProducerFencedException>(() => AppendRaw(store, p, Pid, 2, 5, false, "old epoch"));
        Assert.That(AppendRaw(store, p, Pid, 3, 5, false, "next")!.Value.BaseOffset, Is.EqualTo(5));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Snapshots_taken_at_segment_rolls_plus_the_replayed_tail_restore_producer_state(bool corruptNewestSnapshot)
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var options = Options(Durability.DurabilityMode.GroupCommit);
        options.SegmentBytes = 400;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            for (int batch = 0; batch < 30; batch++)
            {
                AppendRaw(store, p, Pid, 0, batch, false, $"value-{batch:D3}");
            }

            p.FlushAsync().AsTask().Wait(Tx.Timeout);
            Assert.That(p.SegmentCount, Is.GreaterThan(3));
            Assert.That(ProducerStateManager.ListSnapshots(OsFileSystem.Instance, Path.Combine(dir.Path, "t-0")), Has.Count.EqualTo(2), "the two newest are kept");
            CopyImage(dir.Path, image.Path); // a crash: no clean-close snapshot
        }

        if (corruptNewestSnapshot)
        {
            string newest = Directory.GetFiles(Path.Combine(image.Path, "t-0"), "*.snapshot").Order().Last();
            byte[] bytes = File.ReadAllBytes(newest);
            bytes[^1] ^= 0xFF;
            File.WriteAllBytes(newest, bytes);
        }

        using LogStore reopened = LogStore.Open(image.Path, options);
        if (corruptNewestSnapshot)
        {
            Assert.That(reopened.Recovery.Actions, Has.Some.Contains("ignored a corrupt producer snapshot"));
        }

        LogPartition r = reopened.GetPartition("t", 0);
        for (int batch = 25; batch < 30; batch++)
        {
            Assert.That(AppendRaw(reopened, r, Pid, 0, batch, false, $"value-{batch:D3}")!.Value.IsDuplicate, Is.True, $"batch {batch}");
        }

        Assert.Throws<OutOfOrderSequenceException>(() => AppendRaw(reopened, r, Pid, 0, 24, false, "value-024"));
        Assert.That(AppendRaw(reopened, r, Pid, 0, 30, false, "new")!.Value.BaseOffset, Is.EqualTo(30));
    }

    [Test]
    public async Task The_idempotent_producer_numbers_batches_per_partition()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(Durability.DurabilityMode.GroupCommit));
        store.CreateTopic("t", 2);
        await using Producer producer = await store.CreateProducerAsync();
        await using Producer other = await store.CreateProducerAsync();
        Assert.That(producer.ProducerId, Is.Not.EqualTo(other.ProducerId));
        for (int i = 0; i < 3; i++)
        {
            await producer.ProduceAsync(new TopicPartition("t", 0), Msg($"a{i}"));
            await producer.ProduceAsync(new TopicPartition("t", 1), Msg($"b{i}"));
        }

        ProducerStateEntry entry = store.GetPartition("t", 1).ProducerState.Get(producer.ProducerId)!;
        Assert.That(entry.LastSequence, Is.EqualTo(2));
        Assert.That(store.GetPartition("t", 1).HighWatermark, Is.EqualTo(3), "acknowledged after fsync");
    }

    [Test]
    public async Task Producer_ids_are_not_reused_after_a_reopen()
    {
        using var dir = new TempDirectory();
        long first;
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            await using Producer p = await store.CreateProducerAsync();
            first = p.ProducerId;
        }

        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            await using Producer p = await store.CreateProducerAsync();
            Assert.That(p.ProducerId, Is.GreaterThan(first));
        }
    }

    [Test]
    public void Kafka_partitioner_matches_kafkas_murmur2_and_spreads_null_keys()
    {
        // Values from Kafka's own UtilsTest.
        Assert.That(DefaultPartitioner.Murmur2("21"u8), Is.EqualTo(-973932308));
        Assert.That(DefaultPartitioner.Murmur2("foobar"u8), Is.EqualTo(-790332482));
        Assert.That(DefaultPartitioner.Murmur2("a-little-bit-long-string"u8), Is.EqualTo(-985981536));
        Assert.That(DefaultPartitioner.Murmur2("a-little-bit-longer-string"u8), Is.EqualTo(-1486304829));
        Assert.That(DefaultPartitioner.Murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"u8), Is.EqualTo(-58897971));
        Assert.That(DefaultPartitioner.Murmur2("abc"u8), Is.EqualTo(479470107));

        var partitioner = new DefaultPartitioner();
        Assert.That(partitioner.Partition("t", "foobar"u8, true, 7), Is.EqualTo((-790332482 & 0x7fffffff) % 7));
        var seen = new HashSet<int>();
        for (int i = 0; i < 6; i++)
        {
            seen.Add(partitioner.Partition("t", default, false, 3));
        }

        Assert.That(seen, Is.EquivalentTo(new[] { 0, 1, 2 }));
    }
}
