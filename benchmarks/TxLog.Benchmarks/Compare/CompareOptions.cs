using System.Globalization;

namespace TxLog.Benchmarks.Compare;

/// <summary>The command line of <c>compare</c>, parsed.</summary>
public sealed class CompareOptions
{
    /// <summary>The usage text printed for <c>--help</c> and on a bad argument.</summary>
    public const string Usage = """
        usage: compare [options]
          --workloads LIST          workloads to run, comma-separated (default: w1,w2,w3,w3log,w4):
                                      w1 (append), w2 (commit), w3 (outbox), w3log (outbox-log: W3's three
                                      messages without the account updates), w4 (scan), and the TxLog-only
                                      txn-overhead (idempotent vs transactional producer, records/s) and
                                      rc-scan (read-committed vs read-uncommitted scan); the MVCC workloads
                                      kv-put (point upserts, K writers: txlog Instant/Periodic/NoSync, sqlite
                                      FULL/NORMAL, raw-prealloc), and the TxLog-only kv-read (snapshot point
                                      reads vs a ConcurrentDictionary), mvcc-recovery (reopen from ~1 GiB of
                                      redo and from a checkpoint) and mvcc-memory (heap bytes per entry);
                                      'all' runs every one
          --engines a,b,...         engines to run (default: every registered engine)
          --seconds N               timed window of W1/W2/W3/W3-log/kv-put/kv-read and of each txn-overhead
                                    run in seconds (default 5)
          --writers 1,4,16          writer counts for W2, W3, W3-log and kv-put (default 1,4,16)
          --records N               records loaded for W4 and rc-scan; keys loaded for kv-put, kv-read,
                                    mvcc-memory and mvcc-recovery's checkpoint run, whose redo run writes
                                    1 GiB per million (default 1000000)
          --warmup S                untimed warm-up per engine and workload before the measured runs,
                                    in seconds (default 0.5; 0 turns it off)
          --repeat N                run everything N times (default 1), rotating the engine order each
                                    round, and end with the median, min and max of every targeted ratio
                                    over the rounds (each round's ratios are measured side by side)
          --cold                    also run W4 cold (sync + drop_caches; root only, skipped otherwise)
          --dir PATH                where run directories are created (default: a fresh temp directory,
                                    deleted afterwards); each run's own subdirectory is always deleted
        """;

    /// <summary>
    /// The workloads run when <c>--workloads</c> is not given: the shared ones (W1..W4 and the W3 log-only
    /// form). The TxLog-only and MVCC workloads (kv-put included) run only when named (or with <c>all</c>).
    /// </summary>
    public static readonly IReadOnlyList<Workload> DefaultWorkloads =
        [Workload.Append, Workload.Commit, Workload.Outbox, Workload.OutboxLog, Workload.Scan];

    /// <summary>Workloads to run, in <see cref="Workload"/> order (W1, W2, W3, W3-log, W4, TxLog-only).</summary>
    public IReadOnlyList<Workload> Workloads { get; private init; } = DefaultWorkloads;

    /// <summary>Engine names to run; null means every registered engine.</summary>
    public IReadOnlyList<string>? Engines { get; private init; }

    /// <summary>The timed window of W1/W2/W3/W3-log and of each txn-overhead run.</summary>
    public double Seconds { get; private init; } = 5;

    /// <summary>Writer counts K for W2, W3, W3-log and kv-put.</summary>
    public IReadOnlyList<int> Writers { get; private init; } = [1, 4, 16];

    /// <summary>Records loaded for W4 and rc-scan; keys loaded for the MVCC workloads (and the size of mvcc-recovery's redo).</summary>
    public long Records { get; private init; } = 1_000_000;

    /// <summary>
    /// Length of the untimed warm-up run of each engine on each workload (0: none). Without it the first
    /// engine measured runs partly on unoptimized tier-0 code and CPU-bound figures (W1, W4) are biased.
    /// </summary>
    public double WarmupSeconds { get; private init; } = 0.5;

    /// <summary>Rounds of the whole comparison (the summary gives each targeted ratio's median over them).</summary>
    public int Repeat { get; private init; } = 1;

    /// <summary>Whether W4 is also run with the page cache dropped.</summary>
    public bool Cold { get; private init; }

    /// <summary>The parent of the run directories; null means a fresh temp directory.</summary>
    public string? Directory { get; private init; }

    /// <summary>Parses the arguments after <c>compare</c>; throws <see cref="ArgumentException"/> on a bad one.</summary>
    public static CompareOptions Parse(IReadOnlyList<string> args)
    {
        IReadOnlyList<Workload> workloads = DefaultWorkloads;
        IReadOnlyList<string>? engines = null;
        double seconds = 5;
        IReadOnlyList<int> writers = [1, 4, 16];
        long records = 1_000_000;
        double warmup = 0.5;
        bool cold = false;
        int repeat = 1;
        string? directory = null;

        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            switch (arg)
            {
                case "--workloads":
                    workloads = ParseWorkloads(Value(args, ref i, arg));
                    break;
                case "--engines":
                    engines = SplitList(Value(args, ref i, arg));
                    break;
                case "--seconds":
                    seconds = double.Parse(Value(args, ref i, arg), CultureInfo.InvariantCulture);
                    if (!(seconds > 0))
                    {
                        throw new ArgumentException("--seconds must be positive");
                    }

                    break;
                case "--writers":
                    writers = ParseWriters(Value(args, ref i, arg));
                    break;
                case "--records":
                    records = long.Parse(Value(args, ref i, arg), NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
                    if (records <= 0)
                    {
                        throw new ArgumentException("--records must be positive");
                    }

                    break;
                case "--warmup":
                    warmup = double.Parse(Value(args, ref i, arg), CultureInfo.InvariantCulture);
                    if (!(warmup >= 0))
                    {
                        throw new ArgumentException("--warmup must be zero or positive");
                    }

                    break;
                case "--repeat":
                    repeat = int.Parse(Value(args, ref i, arg), CultureInfo.InvariantCulture);
                    if (repeat < 1)
                    {
                        throw new ArgumentException("--repeat must be at least 1");
                    }

                    break;
                case "--cold":
                    cold = true;
                    break;
                case "--dir":
                    directory = Value(args, ref i, arg);
                    break;
                default:
                    throw new ArgumentException($"unknown option '{arg}'");
            }
        }

        return new CompareOptions
        {
            Workloads = workloads,
            Engines = engines,
            Seconds = seconds,
            Writers = writers,
            Repeat = repeat,
            Records = records,
            WarmupSeconds = warmup,
            Cold = cold,
            Directory = directory,
        };
    }

    private static string Value(IReadOnlyList<string> args, ref int i, string option)
    {
        if (i + 1 >= args.Count)
        {
            throw new ArgumentException($"{option} needs a value");
        }

        return args[++i];
    }

    private static List<string> SplitList(string value)
    {
        var items = new List<string>();
        foreach (string item in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            items.Add(item);
        }

        if (items.Count == 0)
        {
            throw new ArgumentException($"empty list '{value}'");
        }

        return items;
    }

    private static List<Workload> ParseWorkloads(string value)
    {
        var selected = new HashSet<Workload>();
        foreach (string item in SplitList(value))
        {
            if (item.Equals("all", StringComparison.OrdinalIgnoreCase))
            {
                selected.UnionWith(Enum.GetValues<Workload>());
                continue;
            }

            selected.Add(item.ToLowerInvariant() switch
            {
                "w1" or "append" => Workload.Append,
                "w2" or "commit" => Workload.Commit,
                "w3" or "outbox" => Workload.Outbox,
                "w3log" or "outbox-log" or "outbox_log" => Workload.OutboxLog,
                "w4" or "scan" => Workload.Scan,
                "txn-overhead" or "txn_overhead" => Workload.TxnOverhead,
                "rc-scan" or "rc_scan" => Workload.RcScan,
                "kv-put" or "kv_put" => Workload.KvPut,
                "kv-read" or "kv_read" => Workload.KvRead,
                "mvcc-recovery" or "mvcc_recovery" => Workload.MvccRecovery,
                "mvcc-memory" or "mvcc_memory" => Workload.MvccMemory,
                _ => throw new ArgumentException($"unknown workload '{item}'"),
            });
        }

        // Always run in the enum's order (W1, W2, W3, W3-log, W4, TxLog-only), whatever order they were listed in.
        var ordered = new List<Workload>();
        foreach (Workload workload in Enum.GetValues<Workload>())
        {
            if (selected.Contains(workload))
            {
                ordered.Add(workload);
            }
        }

        return ordered;
    }

    private static List<int> ParseWriters(string value)
    {
        var writers = new List<int>();
        foreach (string item in SplitList(value))
        {
            int count = int.Parse(item, CultureInfo.InvariantCulture);
            if (count <= 0)
            {
                throw new ArgumentException($"writer count must be positive: '{item}'");
            }

            writers.Add(count);
        }

        return writers;
    }
}
