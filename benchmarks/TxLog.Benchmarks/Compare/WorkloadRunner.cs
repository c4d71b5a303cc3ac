using System.Buffers.Binary;
using System.Diagnostics;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// The timed parts of W1..W4 and the W3 log-only form (WORKLOADS.md), independent of the engine; the
/// TxLog-only workloads are dispatched to <see cref="TxLogWorkloads"/>. Measured loops touch only
/// pre-allocated buffers and per-writer histograms: whatever they allocate is the engine's own doing.
/// </summary>
public static partial class WorkloadRunner
{
    /// <summary>Payload size of W1, W2 and W4 records.</summary>
    public const int RecordSize = 100;

    /// <summary>Size of each of the three W3 outbox messages.</summary>
    public const int MessageSize = 200;

    /// <summary>W3 setup: number of accounts.</summary>
    public const int AccountCount = 10_000;

    /// <summary>W3 setup: initial balance of every account.</summary>
    public const long InitialBalance = 1_000_000;

    // W1 reads the clock once per this many appends, so the clock costs nothing at millions of records/s.
    private const int AppendsPerClockCheck = 1024;

    /// <summary>W1: one writer appends for <paramref name="seconds"/>, then one durable flush.</summary>
    public static Task<CompareResult> AppendAsync(IEngine engine, string directory, double seconds) =>
        OnDedicatedThread(async () =>
        {
            await using IEngineStore store = await engine.OpenAsync(directory, Workload.Append);
            byte[] payload = CreatePayload(writerId: 0, RecordSize);
            ReadOnlyMemory<byte> memory = payload;
            long sequence = 0;

            long start = Stopwatch.GetTimestamp();
            long deadline = start + ToTicks(seconds);
            do
            {
                for (int i = 0; i < AppendsPerClockCheck; i++)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(payload, ++sequence);
                    await store.AppendAsync(memory);
                }
            }
            while (Stopwatch.GetTimestamp() < deadline);

            await store.FlushAsync();
            long end = Stopwatch.GetTimestamp();

            return new CompareResult(engine.Name, "append", 1, sequence, ToSeconds(end - start), sequence * RecordSize);
        });

    /// <summary>W2: <paramref name="writerCount"/> writers, each commits one record durably at a time.</summary>
    public static async Task<CompareResult> CommitAsync(IEngine engine, string directory, int writerCount, double seconds)
    {
        await using IEngineStore store = await engine.OpenAsync(directory, Workload.Commit);
        return await RunWritersAsync(engine.Name, "commit", RecordSize, writerCount, seconds,
            store.CreateCommitWriterAsync, (writer, w, gate) => CommitLoopAsync(writer, CreatePayload(w, RecordSize), gate));
    }

    /// <summary>W3: <paramref name="writerCount"/> writers, each runs the order transaction durably.</summary>
    public static async Task<CompareResult> OutboxAsync(IEngine engine, string directory, int writerCount, double seconds)
    {
        await using IEngineStore store = await engine.OpenAsync(directory, Workload.Outbox);
        await store.CreateAccountsAsync(AccountCount, InitialBalance);
        return await RunWritersAsync(engine.Name, "outbox", 3 * MessageSize, writerCount, seconds,
            store.CreateOutboxWriterAsync, OutboxLoopAsync);
    }

    /// <summary>
    /// W3 log-only form: <paramref name="writerCount"/> writers, each appends the three outbox messages
    /// atomically and durably per transaction (no account updates). Same loop and timing rules as W3.
    /// </summary>
    public static async Task<CompareResult> OutboxLogAsync(IEngine engine, string directory, int writerCount, double seconds)
    {
        await using IEngineStore store = await engine.OpenAsync(directory, Workload.OutboxLog);
        return await RunWritersAsync(engine.Name, "outbox_log", 3 * MessageSize, writerCount, seconds,
            store.CreateOutboxLogWriterAsync, OutboxLogLoopAsync);
    }

    // The multi-writer harness of W2, W3 and W3 log-only: writers (connections and the like) are created
    // before the window opens, each loop runs on a thread of its own from one start gate, and every
    // writer is disposed whatever happens.
    private static async Task<CompareResult> RunWritersAsync<TWriter>(string engineName, string workload, int bytesPerOp,
        int writerCount, double seconds, Func<int, ValueTask<TWriter>> create, Func<TWriter, int, StartGate, Task<WriterOutcome>> loop)
        where TWriter : class, IAsyncDisposable
    {
        var writers = new TWriter?[writerCount];
        try
        {
            for (int w = 0; w < writerCount; w++)
            {
                writers[w] = await create(w);
            }

            var gate = new StartGate(writerCount);
            var loops = new Task<WriterOutcome>[writerCount];
            for (int w = 0; w < writerCount; w++)
            {
                TWriter writer = writers[w]!;
                int writerId = w;
                loops[w] = OnDedicatedThread(() => loop(writer, writerId, gate));
            }

            long allocated = GC.GetTotalAllocatedBytes(precise: false);
            long start = gate.Open(seconds);
            WriterOutcome[] outcomes = await Task.WhenAll(loops);
            CompareResult result = Summarize(engineName, workload, start, outcomes, bytesPerOp);
            Console.Error.WriteLine($"# {engineName} {workload} K={writerCount}: {(GC.GetTotalAllocatedBytes(precise: false) - allocated) / (double)Math.Max(1, result.Operations):F0} bytes allocated per operation (whole process)");
            return result;
        }
        finally
        {
            await DisposeAllAsync(writers);
        }
    }

    /// <summary>TxLog only: see <see cref="TxLogWorkloads.TransactionOverheadAsync"/>; any other engine is skipped.</summary>
    public static Task<List<CompareResult>> TransactionOverheadAsync(IEngine engine, string directory, double seconds) =>
        engine is TxLogEngine
            ? OnDedicatedThread(() => TxLogWorkloads.TransactionOverheadAsync(engine.Name, directory, seconds))
            : throw new NotSupportedException("txn-overhead measures TxLog's own producers (TxLog only).");

    /// <summary>TxLog only: see <see cref="TxLogWorkloads.ReadCommittedScanAsync"/>; any other engine is skipped.</summary>
    public static Task<List<CompareResult>> ReadCommittedScanAsync(IEngine engine, string directory, long records) =>
        engine is TxLogEngine
            ? OnDedicatedThread(() => TxLogWorkloads.ReadCommittedScanAsync(engine.Name, directory, records))
            : throw new NotSupportedException("rc-scan measures TxLog's isolation levels (TxLog only).");

    /// <summary>
    /// W4: loads <paramref name="records"/> records like W1 (untimed), reopens the store and times one
    /// sequential read (<c>scan</c>); with <paramref name="cold"/> reopens again, drops the page cache and
    /// times another (<c>scan_cold</c>), or reports why it cannot. Every scan is checked.
    /// </summary>
    public static Task<List<CompareResult>> ScanAsync(IEngine engine, string directory, long records, bool cold) =>
        OnDedicatedThread(async () =>
        {
            await using (IEngineStore loader = await engine.OpenAsync(directory, Workload.Scan))
            {
                byte[] payload = CreatePayload(writerId: 0, RecordSize);
                ReadOnlyMemory<byte> memory = payload;
                for (long sequence = 1; sequence <= records; sequence++)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(payload, sequence);
                    await loader.AppendAsync(memory);
                }

                await loader.FlushAsync();
            }

            var results = new List<CompareResult> { await TimedScanAsync(engine, directory, records, "scan", dropCaches: false) };
            if (cold)
            {
                if (PageCache.CanDrop(out string? reason))
                {
                    results.Add(await TimedScanAsync(engine, directory, records, "scan_cold", dropCaches: true));
                }
                else
                {
                    Console.Error.WriteLine($"# {engine.Name} scan_cold skipped: {reason}");
                }
            }

            return results;
        });

    private static async Task<CompareResult> TimedScanAsync(IEngine engine, string directory, long records, string name, bool dropCaches)
    {
        await using IEngineStore store = await engine.OpenAsync(directory, Workload.Scan);
        if (dropCaches)
        {
            PageCache.Drop();
        }

        var tally = new ScanTally();
        long start = Stopwatch.GetTimestamp();
        await store.ScanAsync(tally);
        long end = Stopwatch.GetTimestamp();

        long expectedSum = unchecked(records * (records + 1) / 2);
        if (tally.Count != records || tally.Bytes != records * RecordSize || tally.SequenceSum != expectedSum)
        {
            throw new InvalidDataException(
                $"{engine.Name} {name} read {tally.Count} records / {tally.Bytes} bytes / sequence sum {tally.SequenceSum}; " +
                $"expected {records} / {records * RecordSize} / {expectedSum}");
        }

        return new CompareResult(engine.Name, name, 1, tally.Count, ToSeconds(end - start), tally.Bytes);
    }

    private static async Task<WriterOutcome> CommitLoopAsync(ICommitWriter writer, byte[] payload, StartGate gate)
    {
        var latency = new LatencyHistogram();
        ReadOnlyMemory<byte> memory = payload;
        long sequence = 0;

        gate.ArriveAndWait();
        long deadline = gate.Deadline;
        long now = Stopwatch.GetTimestamp();
        while (now < deadline)
        {
            BinaryPrimitives.WriteInt64LittleEndian(payload, ++sequence);
            long begin = Stopwatch.GetTimestamp();
            await writer.CommitOneAsync(memory);
            now = Stopwatch.GetTimestamp();
            latency.Record(now - begin);
        }

        return new WriterOutcome(sequence, now, latency);
    }

    private static async Task<WriterOutcome> OutboxLoopAsync(IOutboxWriter writer, int writerId, StartGate gate)
    {
        var latency = new LatencyHistogram();

        // The account picks come from Random(writerId) alone (WORKLOADS.md); payload bytes use their own seed.
        var picks = new Random(writerId);
        byte[] orderCreated = CreatePayload(writerId, MessageSize, stream: 1);
        byte[] inventoryReserve = CreatePayload(writerId, MessageSize, stream: 2);
        byte[] paymentProcess = CreatePayload(writerId, MessageSize, stream: 3);
        var messages = new OutboxMessages(orderCreated, inventoryReserve, paymentProcess);
        long sequence = 0;
        long transactions = 0;

        gate.ArriveAndWait();
        long deadline = gate.Deadline;
        long now = Stopwatch.GetTimestamp();
        while (now < deadline)
        {
            int from = picks.Next(AccountCount);
            int to = picks.Next(AccountCount - 1);
            if (to >= from)
            {
                to++;
            }

            long amount = picks.Next(1, 101);
            BinaryPrimitives.WriteInt64LittleEndian(orderCreated, ++sequence);
            BinaryPrimitives.WriteInt64LittleEndian(inventoryReserve, ++sequence);
            BinaryPrimitives.WriteInt64LittleEndian(paymentProcess, ++sequence);
            var transaction = new OutboxTransaction(from, to, amount, messages);

            long begin = Stopwatch.GetTimestamp();
            await writer.CommitOneAsync(transaction);
            now = Stopwatch.GetTimestamp();
            latency.Record(now - begin);
            transactions++;
        }

        return new WriterOutcome(transactions, now, latency);
    }

    private static async Task<WriterOutcome> OutboxLogLoopAsync(IOutboxLogWriter writer, int writerId, StartGate gate)
    {
        var latency = new LatencyHistogram();

        // The same payload buffers as W3's (same seeds), without the account picks.
        byte[] orderCreated = CreatePayload(writerId, MessageSize, stream: 1);
        byte[] inventoryReserve = CreatePayload(writerId, MessageSize, stream: 2);
        byte[] paymentProcess = CreatePayload(writerId, MessageSize, stream: 3);
        var messages = new OutboxMessages(orderCreated, inventoryReserve, paymentProcess);
        long sequence = 0;
        long transactions = 0;

        gate.ArriveAndWait();
        long deadline = gate.Deadline;
        long now = Stopwatch.GetTimestamp();
        while (now < deadline)
        {
            BinaryPrimitives.WriteInt64LittleEndian(orderCreated, ++sequence);
            BinaryPrimitives.WriteInt64LittleEndian(inventoryReserve, ++sequence);
            BinaryPrimitives.WriteInt64LittleEndian(paymentProcess, ++sequence);

            long begin = Stopwatch.GetTimestamp();
            await writer.CommitOneAsync(messages);
            now = Stopwatch.GetTimestamp();
            latency.Record(now - begin);
            transactions++;
        }

        return new WriterOutcome(transactions, now, latency);
    }

    private static CompareResult Summarize(string engine, string workload, long start, WriterOutcome[] outcomes, int bytesPerOperation)
    {
        var latency = new LatencyHistogram();
        long operations = 0;
        long minimum = long.MaxValue;
        long end = start;
        foreach (WriterOutcome outcome in outcomes)
        {
            latency.Add(outcome.Latency);
            operations += outcome.Operations;
            minimum = Math.Min(minimum, outcome.Operations);
            end = Math.Max(end, outcome.FinishedAt);
        }

        // The window closes when the last writer finishes its in-flight operation.
        return new CompareResult(engine, workload, outcomes.Length, operations, ToSeconds(end - start),
            operations * bytesPerOperation, latency, minimum);
    }

    /// <summary>
    /// Runs <paramref name="body"/> on a thread of its own: a synchronous engine blocks that thread for the
    /// whole run instead of a pool thread; an asynchronous one leaves it at its first real await.
    /// </summary>
    internal static Task<T> OnDedicatedThread<T>(Func<Task<T>> body) =>
        Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    /// <summary>Random bytes, fixed per writer (and stream); the first 8 are overwritten per record.</summary>
    internal static byte[] CreatePayload(int writerId, int size, int stream = 0)
    {
        byte[] payload = new byte[size];
        new Random(unchecked((writerId + 1) * 7_919 + stream * 104_729)).NextBytes(payload);
        return payload;
    }

    private static async Task DisposeAllAsync(IAsyncDisposable?[] items)
    {
        foreach (IAsyncDisposable? item in items)
        {
            if (item is not null)
            {
                await item.DisposeAsync();
            }
        }
    }

    internal static long ToTicks(double seconds) => (long)(seconds * Stopwatch.Frequency);

    internal static double ToSeconds(long ticks) => (double)ticks / Stopwatch.Frequency;

    /// <summary>What one W2/W3 writer did: operations, when it finished, and its latencies.</summary>
    private sealed record WriterOutcome(long Operations, long FinishedAt, LatencyHistogram Latency);

    /// <summary>
    /// Starts all writers of a run together: each writer blocks (on its own thread) until every writer is
    /// ready, then the runner sets the deadline and releases them at once.
    /// </summary>
    internal sealed class StartGate(int writers)
    {
        private readonly CountdownEvent _ready = new(writers);
        private readonly ManualResetEventSlim _go = new(false);

        /// <summary>The window's deadline in <see cref="Stopwatch"/> ticks; valid once released.</summary>
        public long Deadline { get; private set; }

        /// <summary>Called by a writer: announce readiness and wait for the start.</summary>
        public void ArriveAndWait()
        {
            _ready.Signal();
            _go.Wait();
        }

        /// <summary>Waits for every writer, opens the window and returns its start timestamp.</summary>
        public long Open(double seconds)
        {
            _ready.Wait();
            long start = Stopwatch.GetTimestamp();

            // Set() publishes Deadline to the writers: they read it only after Wait() returned.
            Deadline = start + ToTicks(seconds);
            _go.Set();
            return start;
        }
    }
}

/// <summary>The cold-scan helper: flush dirty pages, then ask Linux to drop its clean caches.</summary>
internal static class PageCache
{
    private const string DropCachesPath = "/proc/sys/vm/drop_caches";

    /// <summary>Whether <see cref="Drop"/> can work here; <paramref name="reason"/> says why not.</summary>
    public static bool CanDrop(out string? reason)
    {
        reason = !OperatingSystem.IsLinux() ? "not Linux"
            : !Environment.IsPrivilegedProcess ? "not root"
            : !File.Exists(DropCachesPath) ? $"{DropCachesPath} is missing"
            : null;
        return reason is null;
    }

    /// <summary><c>sync</c> then <c>echo 3 &gt; /proc/sys/vm/drop_caches</c>: page cache, dentries and inodes.</summary>
    public static void Drop()
    {
        // drop_caches only drops clean pages, so sync first or dirty data would stay cached.
        NativeIo.SyncAll();
        File.WriteAllText(DropCachesPath, "3");
    }
}
