using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;

namespace TxLog.Benchmarks.Compare;

/// <summary>The point-write workload <c>kv-put</c> (engines implementing <see cref="IKvEngine"/>).</summary>
public static partial class WorkloadRunner
{
    /// <summary>
    /// <c>kv-put</c>: for each of the engine's variants, in a fresh store: load <paramref name="keys"/> keys
    /// (untimed, <see cref="IKvStore.LoadAsync"/>), create <paramref name="writerCount"/> writers (untimed), then
    /// each writer loops until the deadline: pick a key with its own <c>Random(writerId)</c>, one transaction that
    /// upserts a new 100-byte value (per-writer random bytes, first 8 = sequence number), committed as the
    /// variant says. Same loop and timing rules as W2 (an operation in flight at the deadline completes and
    /// counts; the window ends when the last writer finishes; latency per operation from its start until the
    /// commit returned). One result per variant; <c>mb_per_s</c> counts key + value (116 bytes) per operation.
    /// Each variant's directory is deleted before the next one loads, and a full GC runs (untimed) just before
    /// each window. GC activity in the window goes to stderr.
    /// </summary>
    public static Task<List<CompareResult>> KvPutAsync(IEngine engine, string directory, int writerCount, double seconds, long keys) =>
        engine is IKvEngine kv && kv.KvPutVariants.Count > 0
            ? OnDedicatedThread(async () =>
            {
                var results = new List<CompareResult>();
                foreach (string variant in kv.KvPutVariants)
                {
                    string variantDirectory = Path.Combine(directory, variant);
                    Directory.CreateDirectory(variantDirectory);
                    try
                    {
                        results.Add(await KvPutVariantAsync(engine.Name, kv, variant, variantDirectory, writerCount, seconds, keys));
                    }
                    finally
                    {
                        Directory.Delete(variantDirectory, recursive: true);
                    }
                }

                return results;
            })
            : throw new NotSupportedException("kv-put runs on txlog, sqlite and raw-prealloc only.");

    private static async Task<CompareResult> KvPutVariantAsync(string engineName, IKvEngine kv, string variant, string directory,
        int writerCount, double seconds, long keys)
    {
        await using IKvStore store = await kv.OpenKvAsync(directory, variant);
        long loadStart = Stopwatch.GetTimestamp();
        await store.LoadAsync(keys);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"#   {engineName} {variant} K={writerCount}: loaded {keys} keys in {ToSeconds(Stopwatch.GetTimestamp() - loadStart):F1} s (untimed)"));

        var writers = new IKvWriter[writerCount];
        try
        {
            for (int w = 0; w < writerCount; w++)
            {
                writers[w] = await store.CreateWriterAsync(w);
            }

            var gate = new StartGate(writerCount);
            var loops = new Task<WriterOutcome>[writerCount];
            for (int w = 0; w < writerCount; w++)
            {
                IKvWriter writer = writers[w];
                int writerId = w;
                loops[w] = OnDedicatedThread(() => KvPutLoopAsync(writer, writerId, keys, gate));
            }

            // Untimed: collect the load's garbage and any earlier variant's store now, so the window starts on a
            // heap holding only this store (its ephemeral GCs would otherwise also pay for dead gen2 objects).
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            var gc = GcSnapshot.Take();
            long start = gate.Open(seconds);
            WriterOutcome[] outcomes = await Task.WhenAll(loops);
            CompareResult result = Summarize(engineName, variant, start, outcomes, KvData.KeySize + KvData.ValueSize);
            Console.Error.WriteLine($"#   {engineName} {variant} K={writerCount}: {gc.Since()} in the window");
            return result;
        }
        finally
        {
            await DisposeAllAsync(writers);
        }
    }

    private static async Task<WriterOutcome> KvPutLoopAsync(IKvWriter writer, int writerId, long keys, StartGate gate)
    {
        var latency = new LatencyHistogram();

        // The key picks come from Random(writerId) alone; the value bytes use their own seed (as in W3).
        var picks = new Random(writerId);
        byte[] key = new byte[KvData.KeySize];
        byte[] value = CreatePayload(writerId, KvData.ValueSize);
        long sequence = 0;

        gate.ArriveAndWait();
        long deadline = gate.Deadline;
        long now = Stopwatch.GetTimestamp();
        while (now < deadline)
        {
            KvData.FillKey(key, picks.NextInt64(keys));
            BinaryPrimitives.WriteInt64LittleEndian(value, ++sequence);

            long begin = Stopwatch.GetTimestamp();
            await writer.PutAsync(key, value);
            now = Stopwatch.GetTimestamp();
            latency.Record(now - begin);
        }

        return new WriterOutcome(sequence, now, latency);
    }
}

/// <summary>
/// GC activity of this process between two points (diagnostics for stderr): collections per generation and
/// the total time the runtime paused threads for GC.
/// </summary>
internal readonly record struct GcSnapshot(int Gen0, int Gen1, int Gen2, TimeSpan Paused, long Allocated)
{
    public static GcSnapshot Take() =>
        new(GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration(), GC.GetTotalAllocatedBytes());

    /// <summary>"GC 12/3/1 (gen0/1/2), paused 45 ms, allocated 120 MB, heap 400 MB" since this snapshot.</summary>
    public string Since()
    {
        GcSnapshot now = Take();
        return string.Create(CultureInfo.InvariantCulture,
            $"GC {now.Gen0 - Gen0}/{now.Gen1 - Gen1}/{now.Gen2 - Gen2} (gen0/1/2), paused {(now.Paused - Paused).TotalMilliseconds:F0} ms, allocated {(now.Allocated - Allocated) / 1e6:F0} MB, heap {GC.GetTotalMemory(false) / 1e6:F0} MB");
    }
}
