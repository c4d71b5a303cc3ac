using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using TxLog.Durability;
using TxLog.Mvcc;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// The TxLog-only MVCC workloads: snapshot point reads (<c>kv-read</c>), recovery time (<c>mvcc-recovery</c>)
/// and heap bytes per entry (<c>mvcc-memory</c>). They use the MVCC API directly (every other engine is
/// skipped); each result is one JSON line like the shared workloads' (no latency fields). Every store is
/// opened with <see cref="DurabilityMode.None"/> (the engine syncs its redo itself, as its sync mode says) and
/// every engine with <see cref="LogSyncMode.NoSync"/> and no automatic checkpoints (neither timed nor by redo
/// size), so nothing but the measured work runs in a window. Data: <see cref="KvData"/>'s 16-byte keys and
/// 100-byte values, loaded by <see cref="TxLogKvStore.Load"/> (transactions of 10,000 puts), unless said otherwise.
/// </summary>
public static class MvccWorkloads
{
    /// <summary>Gets per transaction of the two <c>kv-read</c> variants.</summary>
    public static readonly int[] GetsPerTransaction = [1, 100];

    /// <summary>Reader counts K of <c>kv-read</c>.</summary>
    public static readonly int[] ReaderCounts = [1, 2];

    /// <summary>The in-memory ceiling's engine name in the JSON output.</summary>
    public const string DictionaryEngine = "concurrentdictionary";

    /// <summary><c>mvcc-recovery</c> (a): redo bytes written per million <c>--records</c> (1 GiB at the default).</summary>
    public const long RedoBytesPerMillionKeys = 1L << 30;

    /// <summary><c>mvcc-recovery</c> (a): distinct keys the redo run writes, round robin.</summary>
    public const int RedoKeys = 100_000;

    /// <summary><c>mvcc-recovery</c> (a): value size of the redo run.</summary>
    public const int RedoValueSize = 1024;

    /// <summary><c>mvcc-recovery</c> (a): puts per transaction of the redo run.</summary>
    public const int RedoPutsPerTransaction = 100;

    private const string MapName = "kv";

    private static MvccOptions QuietOptions() => new()
    {
        SyncMode = LogSyncMode.NoSync,
        CheckpointInterval = null,
        CheckpointRedoBytes = long.MaxValue,
    };

    private static LogStore OpenStore(string directory) =>
        LogStore.Open(directory, new LogStoreOptions { Durability = DurabilityMode.None });

    // ------------------------------------------------------------------------------------------ kv-read

    /// <summary>
    /// <c>kv-read</c>: snapshot point reads against the ceiling of a plain concurrent hash map.
    /// </summary>
    /// <remarks>
    /// Setup (untimed): <paramref name="keys"/> keys loaded into one map, and the same keys (as <c>long</c>) with
    /// their own 100-byte values in a <c>ConcurrentDictionary&lt;long, byte[]&gt;</c>. Then, for G = 1 and 100
    /// Gets per transaction (JSON <c>kv_read</c>, <c>kv_read_100</c>) and K = 1, 2 readers (dedicated threads
    /// released together): each reader loops until <paramref name="seconds"/> have passed (clock read once per
    /// transaction): <c>BeginTransaction(RepeatableRead)</c>, G × <c>TryGet</c> of a key picked with its own
    /// <c>Random(readerId)</c>, <c>Commit()</c>. Every value read is checked (its first 8 bytes are the key's
    /// index). Right after, the same K readers do exactly the same lookups (same picks, same count per reader)
    /// with <c>TryGetValue</c> on the dictionary (engine <c>concurrentdictionary</c>, same workload name), timed
    /// from the release until the last reader is done. <c>ops</c> = reads, <c>mb_per_s</c> = value bytes.
    /// </remarks>
    public static Task<List<CompareResult>> KvReadAsync(string engineName, string directory, long keys, double seconds) =>
        WorkloadRunner.OnDedicatedThread(() =>
        {
            var results = new List<CompareResult>();
            using LogStore store = OpenStore(directory);
            TransactionEngine engine = store.OpenTransactionEngine(QuietOptions());
            TransactionalMap<byte[], byte[]> map = engine.OpenMap(MapName);
            long loadStart = Stopwatch.GetTimestamp();
            TxLogKvStore.Load(engine, map, keys);
            var dictionary = new ConcurrentDictionary<long, byte[]>(concurrencyLevel: Environment.ProcessorCount, capacity: (int)Math.Min(keys, int.MaxValue));
            for (long i = 0; i < keys; i++)
            {
                byte[] value = new byte[KvData.ValueSize];
                KvData.FillLoadValue(value, i);
                dictionary[i] = value;
            }

            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"#   {engineName} kv_read: loaded {keys} keys into the map and the dictionary in {WorkloadRunner.ToSeconds(Stopwatch.GetTimestamp() - loadStart):F1} s (untimed)"));

            foreach (int gets in GetsPerTransaction)
            {
                string workload = gets == 1 ? "kv_read" : $"kv_read_{gets}";
                foreach (int readers in ReaderCounts)
                {
                    GC.Collect();
                    var gc = GcSnapshot.Take();
                    (long[] counts, double txlogSeconds) = RunReaders(readers, seconds, (readerId, gate) => TxLogReader(engine, map, keys, gets, readerId, gate));
                    string gcLine = gc.Since();
                    long reads = counts.Sum();
                    results.Add(new CompareResult(engineName, workload, readers, reads, txlogSeconds, reads * KvData.ValueSize));

                    GC.Collect();
                    (long[] same, double dictionarySeconds) = RunReaders(readers, seconds, (readerId, gate) => DictionaryReader(dictionary, keys, counts[readerId], readerId, gate));
                    results.Add(new CompareResult(DictionaryEngine, workload, readers, same.Sum(), dictionarySeconds, same.Sum() * KvData.ValueSize));
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"#   {engineName} {workload} K={readers}: {reads / txlogSeconds:F0} reads/s in {reads / gets} transactions (per reader: {string.Join(", ", counts)}; {gcLine}); {DictionaryEngine} {same.Sum() / dictionarySeconds:F0} reads/s; ratio {reads / txlogSeconds / (same.Sum() / dictionarySeconds):F3}"));
                }
            }

            GC.KeepAlive(dictionary);
            return Task.FromResult(results);
        });

    // Releases `readers` dedicated threads together; returns each one's operation count and the window (release
    // until the last thread finished).
    private static (long[] Counts, double Seconds) RunReaders(int readers, double seconds, Func<int, WorkloadRunner.StartGate, (long Count, long FinishedAt)> body)
    {
        var gate = new WorkloadRunner.StartGate(readers);
        var tasks = new Task<(long Count, long FinishedAt)>[readers];
        for (int r = 0; r < readers; r++)
        {
            int readerId = r;
            tasks[r] = Task.Factory.StartNew(() => body(readerId, gate), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        long start = gate.Open(seconds);
        Task.WaitAll(tasks);
        long end = start;
        long[] counts = new long[readers];
        for (int r = 0; r < readers; r++)
        {
            counts[r] = tasks[r].Result.Count;
            end = Math.Max(end, tasks[r].Result.FinishedAt);
        }

        return (counts, WorkloadRunner.ToSeconds(end - start));
    }

    private static (long Count, long FinishedAt) TxLogReader(TransactionEngine engine, TransactionalMap<byte[], byte[]> map, long keys, int gets,
        int readerId, WorkloadRunner.StartGate gate)
    {
        var picks = new Random(readerId);
        byte[] key = new byte[KvData.KeySize];
        long reads = 0;
        long wrong = 0;

        gate.ArriveAndWait();
        long deadline = gate.Deadline;
        long now = Stopwatch.GetTimestamp();
        while (now < deadline)
        {
            using (MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.RepeatableRead))
            {
                for (int g = 0; g < gets; g++)
                {
                    long index = picks.NextInt64(keys);
                    KvData.FillKey(key, index);
                    if (!map.TryGet(tx, key, out byte[] value) || BinaryPrimitives.ReadInt64LittleEndian(value) != index)
                    {
                        wrong++;
                    }
                }

                tx.Commit();
            }

            reads += gets;
            now = Stopwatch.GetTimestamp();
        }

        if (wrong != 0)
        {
            throw new InvalidDataException($"kv-read: reader {readerId} got {wrong} missing or wrong values out of {reads}");
        }

        return (reads, now);
    }

    private static (long Count, long FinishedAt) DictionaryReader(ConcurrentDictionary<long, byte[]> dictionary, long keys, long count,
        int readerId, WorkloadRunner.StartGate gate)
    {
        var picks = new Random(readerId);
        long wrong = 0;

        gate.ArriveAndWait();
        for (long i = 0; i < count; i++)
        {
            long index = picks.NextInt64(keys);
            if (!dictionary.TryGetValue(index, out byte[]? value) || BinaryPrimitives.ReadInt64LittleEndian(value) != index)
            {
                wrong++;
            }
        }

        long now = Stopwatch.GetTimestamp();
        if (wrong != 0)
        {
            throw new InvalidDataException($"kv-read: dictionary reader {readerId} got {wrong} missing or wrong values out of {count}");
        }

        return (count, now);
    }

    // ------------------------------------------------------------------------------------------ mvcc-recovery

    /// <summary>
    /// <c>mvcc-recovery</c>: how long reopening the store and the MVCC engine takes, (a) from redo only and
    /// (b) from a checkpoint.
    /// </summary>
    /// <remarks>
    /// (a) <c>mvcc_recovery_redo</c>: transactions of 100 puts of 1 KiB values (first 8 bytes = a sequence number)
    /// over 100,000 keys taken round robin, until the redo partition holds ≥ 1 GiB per million
    /// <paramref name="keys"/> (1 GiB at the default), with no checkpoint; close. (b) <c>mvcc_recovery_checkpoint</c>:
    /// load <paramref name="keys"/> entries (16 B key, 100 B value), <c>CheckpointAsync</c>, close.
    /// Timed, after a full GC: <c>LogStore.Open</c> + <c>OpenTransactionEngine</c> (page cache warm: the data was
    /// just written; with <paramref name="cold"/> also a second reopen after sync + drop_caches, reported with
    /// <c>_cold</c>). Untimed checks afterwards: the engine's RecoverySummary names the checkpoint (b) or the
    /// number of transactions replayed (a), and every key holds the value last written to it.
    /// (a) reports ops = transactions replayed and MB/s of redo bytes replayed (the redo partition's size);
    /// (b) ops = entries and MB/s of checkpoint file bytes. Each run's data is deleted when it is done.
    /// </remarks>
    public static Task<List<CompareResult>> RecoveryAsync(string engineName, string directory, long keys, bool cold) =>
        WorkloadRunner.OnDedicatedThread(async () =>
        {
            bool dropCaches = false;
            if (cold)
            {
                dropCaches = PageCache.CanDrop(out string? reason);
                if (!dropCaches)
                {
                    Console.Error.WriteLine($"# {engineName} mvcc_recovery cold runs skipped: {reason}");
                }
            }

            var results = new List<CompareResult>();
            string redoDirectory = Path.Combine(directory, "redo");
            try
            {
                results.AddRange(RedoRecovery(engineName, redoDirectory, (long)(RedoBytesPerMillionKeys * (keys / 1e6)), dropCaches));
            }
            finally
            {
                Directory.Delete(redoDirectory, recursive: true);
            }

            string checkpointDirectory = Path.Combine(directory, "checkpoint");
            try
            {
                results.AddRange(await CheckpointRecoveryAsync(engineName, checkpointDirectory, keys, dropCaches));
            }
            finally
            {
                Directory.Delete(checkpointDirectory, recursive: true);
            }

            return results;
        });

    private static List<CompareResult> RedoRecovery(string engineName, string directory, long targetBytes, bool dropCaches)
    {
        long[] lastSequence = new long[RedoKeys];
        long transactions = 0;
        long redoBytes;
        long writeStart = Stopwatch.GetTimestamp();
        using (LogStore store = OpenStore(directory))
        {
            TransactionEngine engine = store.OpenTransactionEngine(QuietOptions());
            TransactionalMap<byte[], byte[]> map = engine.OpenMap(MapName);
            LogPartition redo = store.GetPartition(TransactionEngine.RedoTopic, 0);
            byte[] key = new byte[KvData.KeySize];
            byte[] value = WorkloadRunner.CreatePayload(writerId: 0, RedoValueSize, stream: 5);
            long sequence = 0;
            int next = 0;
            while (transactions % 100 != 0 || redo.SizeInBytes < targetBytes)
            {
                using (MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
                {
                    for (int i = 0; i < RedoPutsPerTransaction; i++)
                    {
                        KvData.FillKey(key, next);
                        BinaryPrimitives.WriteInt64LittleEndian(value, ++sequence);
                        map.Put(tx, key, value);
                        lastSequence[next] = sequence;
                        next = (next + 1) % RedoKeys;
                    }

                    tx.Commit();
                }

                transactions++;
            }

            redoBytes = redo.SizeInBytes;
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"#   {engineName} mvcc_recovery_redo: wrote {transactions} transactions x {RedoPutsPerTransaction} puts of {RedoValueSize} B, {redoBytes / 1e6:F1} MB of redo in {WorkloadRunner.ToSeconds(Stopwatch.GetTimestamp() - writeStart):F1} s (NoSync, untimed)"));

        var results = new List<CompareResult>();
        bool[] modes = dropCaches ? [false, true] : [false];
        foreach (bool drop in modes)
        {
            string name = drop ? "mvcc_recovery_redo_cold" : "mvcc_recovery_redo";
            double seconds = TimedReopen(engineName, name, directory, drop, engine =>
            {
                string expected = $"replayed {transactions} committed transactions";
                if (!engine.RecoverySummary.Contains("no checkpoint", StringComparison.Ordinal) || !engine.RecoverySummary.Contains(expected, StringComparison.Ordinal))
                {
                    throw new InvalidDataException($"{name}: recovery summary '{engine.RecoverySummary}'; expected no checkpoint and '{expected}'");
                }

                TransactionalMap<byte[], byte[]> map = engine.OpenMap(MapName);
                using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
                byte[] key = new byte[KvData.KeySize];
                for (int k = 0; k < RedoKeys; k++)
                {
                    KvData.FillKey(key, k);
                    bool found = map.TryGet(tx, key, out byte[] value);
                    if (lastSequence[k] == 0
                        ? found
                        : !found || value.Length != RedoValueSize || BinaryPrimitives.ReadInt64LittleEndian(value) != lastSequence[k])
                    {
                        throw new InvalidDataException($"{name}: key {k} does not hold its last write (sequence {lastSequence[k]}) after recovery");
                    }
                }

                tx.Commit();
            });
            results.Add(new CompareResult(engineName, name, 1, transactions, seconds, redoBytes));
        }

        return results;
    }

    private static async Task<List<CompareResult>> CheckpointRecoveryAsync(string engineName, string directory, long keys, bool dropCaches)
    {
        long loadStart = Stopwatch.GetTimestamp();
        long checkpointTicks;
        long redoAfter;
        using (LogStore store = OpenStore(directory))
        {
            TransactionEngine engine = store.OpenTransactionEngine(QuietOptions());
            TransactionalMap<byte[], byte[]> map = engine.OpenMap(MapName);
            TxLogKvStore.Load(engine, map, keys);
            long checkpointStart = Stopwatch.GetTimestamp();
            await engine.CheckpointAsync();
            checkpointTicks = Stopwatch.GetTimestamp() - checkpointStart;
            redoAfter = store.GetPartition(TransactionEngine.RedoTopic, 0).SizeInBytes;
        }

        long checkpointBytes = 0;
        int checkpointFiles = 0;
        foreach (string file in Directory.GetFiles(Path.Combine(directory, "mvcc"), "*.ckpt"))
        {
            checkpointBytes += new FileInfo(file).Length;
            checkpointFiles++;
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"#   {engineName} mvcc_recovery_checkpoint: loaded {keys} entries and checkpointed in {WorkloadRunner.ToSeconds(Stopwatch.GetTimestamp() - loadStart):F1} s (CheckpointAsync {WorkloadRunner.ToSeconds(checkpointTicks):F2} s; untimed); {checkpointFiles} checkpoint file(s), {checkpointBytes / 1e6:F1} MB; redo left {redoAfter / 1e6:F1} MB"));

        var results = new List<CompareResult>();
        bool[] modes = dropCaches ? [false, true] : [false];
        foreach (bool drop in modes)
        {
            string name = drop ? "mvcc_recovery_checkpoint_cold" : "mvcc_recovery_checkpoint";
            double seconds = TimedReopen(engineName, name, directory, drop, engine =>
            {
                if (!engine.RecoverySummary.StartsWith("checkpoint at ts", StringComparison.Ordinal) || !engine.RecoverySummary.Contains("replayed 0 committed", StringComparison.Ordinal))
                {
                    throw new InvalidDataException($"{name}: recovery summary '{engine.RecoverySummary}'; expected a checkpoint and no redo replayed");
                }

                TransactionalMap<byte[], byte[]> map = engine.OpenMap(MapName);
                using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
                byte[] key = new byte[KvData.KeySize];
                for (long k = 0; k < keys; k++)
                {
                    KvData.FillKey(key, k);
                    if (!map.TryGet(tx, key, out byte[] value) || value.Length != KvData.ValueSize || BinaryPrimitives.ReadInt64LittleEndian(value) != k)
                    {
                        throw new InvalidDataException($"{name}: key {k} is missing or wrong after recovery");
                    }
                }

                tx.Commit();
            });
            results.Add(new CompareResult(engineName, name, 1, keys, seconds, checkpointBytes));
        }

        return results;
    }

    // Times LogStore.Open + OpenTransactionEngine on a closed store (after a full GC, and with `dropCaches` after
    // sync + drop_caches), then runs the untimed `check` on the recovered engine and closes it.
    private static double TimedReopen(string engineName, string name, string directory, bool dropCaches, Action<TransactionEngine> check)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        if (dropCaches)
        {
            PageCache.Drop();
        }

        var gc = GcSnapshot.Take();
        long start = Stopwatch.GetTimestamp();
        using LogStore store = OpenStore(directory);
        long opened = Stopwatch.GetTimestamp();
        TransactionEngine engine = store.OpenTransactionEngine(QuietOptions());
        long end = Stopwatch.GetTimestamp();
        string gcLine = gc.Since();
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"#   {engineName} {name}: LogStore.Open {WorkloadRunner.ToSeconds(opened - start):F3} s + OpenTransactionEngine {WorkloadRunner.ToSeconds(end - opened):F3} s ({gcLine}); {engine.RecoverySummary}"));
        check(engine);
        return WorkloadRunner.ToSeconds(end - start);
    }

    // ------------------------------------------------------------------------------------------ mvcc-memory

    /// <summary>
    /// <c>mvcc-memory</c>: managed heap bytes per entry of a map.
    /// </summary>
    /// <remarks>
    /// In this process: open a store, the engine and a byte[] map; <c>GC.GetTotalMemory(true)</c>; load
    /// <paramref name="keys"/> entries (16-byte key, 100-byte value; committed, no checkpoint);
    /// <c>GC.GetTotalMemory(true)</c> again while the engine is still open; bytes/entry = difference / entries
    /// (JSON <c>mvcc_memory</c>, <c>ops</c> = entries, <c>seconds</c> = load time, <c>bytes_per_entry</c>).
    /// For scale, the same measurement of a <c>ConcurrentDictionary&lt;long, byte[]&gt;</c> holding the same
    /// values (engine <c>concurrentdictionary</c>); the payload itself is 116 bytes per entry.
    /// </remarks>
    public static Task<List<CompareResult>> MemoryAsync(string engineName, string directory, long keys) =>
        WorkloadRunner.OnDedicatedThread(() =>
        {
            // Each measurement runs in its own non-inlined method, so nothing of the first (the engine, the map)
            // is still reachable from this frame when the second measures its baseline.
            CompareResult txlog = MeasureEngineMemory(engineName, directory, keys);
            CompareResult dictionary = MeasureDictionaryMemory(keys);
            return Task.FromResult(new List<CompareResult> { txlog, dictionary });
        });

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static CompareResult MeasureEngineMemory(string engineName, string directory, long keys)
    {
        using LogStore store = OpenStore(directory);
        TransactionEngine engine = store.OpenTransactionEngine(QuietOptions());
        TransactionalMap<byte[], byte[]> map = engine.OpenMap(MapName);
        long before = GC.GetTotalMemory(forceFullCollection: true);
        long start = Stopwatch.GetTimestamp();
        TxLogKvStore.Load(engine, map, keys);
        long end = Stopwatch.GetTimestamp();
        long after = GC.GetTotalMemory(forceFullCollection: true);
        GC.KeepAlive(map);
        GC.KeepAlive(engine);
        double perEntry = (after - before) / (double)keys;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"#   {engineName} mvcc_memory: heap {before / 1e6:F1} MB -> {after / 1e6:F1} MB for {keys} entries = {perEntry:F1} B/entry (payload {KvData.KeySize + KvData.ValueSize} B)"));
        return new CompareResult(engineName, "mvcc_memory", 1, keys, WorkloadRunner.ToSeconds(end - start),
            keys * (KvData.KeySize + KvData.ValueSize), bytesPerEntry: perEntry);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static CompareResult MeasureDictionaryMemory(long keys)
    {
        long before = GC.GetTotalMemory(forceFullCollection: true);
        long start = Stopwatch.GetTimestamp();
        var dictionary = new ConcurrentDictionary<long, byte[]>();
        for (long i = 0; i < keys; i++)
        {
            byte[] value = new byte[KvData.ValueSize];
            KvData.FillLoadValue(value, i);
            dictionary[i] = value;
        }

        long end = Stopwatch.GetTimestamp();
        long after = GC.GetTotalMemory(forceFullCollection: true);
        GC.KeepAlive(dictionary);
        double perEntry = (after - before) / (double)keys;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"#   {DictionaryEngine} mvcc_memory: heap {before / 1e6:F1} MB -> {after / 1e6:F1} MB for {keys} entries = {perEntry:F1} B/entry"));
        return new CompareResult(DictionaryEngine, "mvcc_memory", 1, keys, WorkloadRunner.ToSeconds(end - start),
            keys * (sizeof(long) + KvData.ValueSize), bytesPerEntry: perEntry);
    }
}
