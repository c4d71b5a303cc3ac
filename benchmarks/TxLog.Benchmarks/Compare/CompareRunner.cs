using System.Globalization;
using System.Text;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// <c>compare</c>: runs the WORKLOADS.md workloads against every registered engine in one process, prints
/// one JSON line per result on stdout as it is measured, then a table of every figure, when a
/// <c>txlog</c> result exists the ratio TxLog / peer for each workload and writer count, and the ratios that
/// have targets (W3 log-only form against its peers, and the TxLog-only pairs: transactional / idempotent
/// producer, read-committed / read-uncommitted scan). Progress and skips go to stderr, so stdout holds only
/// the results and the tables.
/// </summary>
public static class CompareRunner
{
    /// <summary>The name whose figures are the numerator of the ratio table.</summary>
    public const string SubjectEngine = "txlog";

    // Enough for the scan path to reach optimized code, small enough to load in well under a second.
    private const long WarmupRecords = 100_000;

    /// <summary>Every engine the runner knows, in output order. Adding an engine is one line here.</summary>
    private static readonly IEngine[] _engines =
    [
        new RawEngine(preallocate: false),
        new RawEngine(preallocate: true),
        new SqliteEngine(),
        new FasterLogEngine(),
        new TxLogEngine(),
    ];

    /// <summary>Runs the comparison; <paramref name="args"/> may start with the word <c>compare</c>.</summary>
    /// <returns>0 on success, 1 if any run failed, 2 on a bad command line.</returns>
    public static async Task<int> RunAsync(string[] args)
    {
        ArraySegment<string> rest = args.Length > 0 && args[0] == "compare" ? args[1..] : args;
        if (rest.Contains("--help") || rest.Contains("-h"))
        {
            Console.WriteLine(CompareOptions.Usage);
            return 0;
        }

        CompareOptions options;
        List<IEngine> engines;
        try
        {
            options = CompareOptions.Parse(rest);
            engines = SelectEngines(options.Engines);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"compare: {ex.Message}");
            Console.Error.WriteLine(CompareOptions.Usage);
            return 2;
        }

        // W2/W3 park up to 16 writers on dedicated threads, and async engines continue on the pool;
        // without a floor the pool's slow thread injection would shape the async figures.
        ThreadPool.SetMinThreads(64, 64);

        bool ownRoot = options.Directory is null;
        string root = options.Directory ?? Path.Combine(Path.GetTempPath(), $"txlog-compare-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);

        var rounds = new List<List<CompareResult>>();
        bool failed = false;
        try
        {
            for (int round = 0; round < options.Repeat; round++)
            {
                if (options.Repeat > 1)
                {
                    Console.Error.WriteLine($"# round {round + 1} of {options.Repeat}");
                }

                // Each round starts with another engine, so no engine always runs first (or last) on a machine
                // whose speed drifts; the warm-ups run in the first round only.
                var order = new List<IEngine>(engines.Count);
                for (int e = 0; e < engines.Count; e++)
                {
                    order.Add(engines[(e + round) % engines.Count]);
                }

                var results = new List<CompareResult>();
                failed |= await RunRoundAsync(options, order, root, results, warmUp: round == 0);
                rounds.Add(results);
                if (options.Repeat > 1)
                {
                    Console.Out.WriteLine($"\n== round {round + 1} of {options.Repeat}");
                }

                Console.Out.Write(FormatTables(results, engines));
                Console.Out.Flush();
            }

            if (options.Repeat > 1)
            {
                Console.Out.Write(FormatRoundsSummary(rounds));
                Console.Out.Flush();
            }
        }
        finally
        {
            if (ownRoot)
            {
                TryDelete(root);
            }
        }

        return failed ? 1 : 0;
    }

    // One round: every workload against every engine (in the given order), warm-ups first if asked.
    // Returns true if any run failed.
    private static async Task<bool> RunRoundAsync(CompareOptions options, List<IEngine> engines, string root, List<CompareResult> results, bool warmUp)
    {
        bool failed = false;
        foreach (Workload workload in options.Workloads)
        {
            bool concurrent = IsConcurrent(workload);
            foreach (IEngine engine in engines)
            {
                var specs = new List<RunSpec>();
                if (warmUp && options.WarmupSeconds > 0)
                {
                    // Untimed: lets the JIT optimize the engine's and the runner's hot paths first, so the
                    // first engine measured is not the one paying for tier-0 code. The largest K exercises
                    // the followers' paths as well as the leader's.
                    specs.Add(new RunSpec(engine, workload, concurrent ? Max(options.Writers) : 1,
                        options.WarmupSeconds, Math.Min(options.Records, WarmupRecords), Cold: false, IsWarmup: true));
                }

                foreach (int writers in concurrent ? options.Writers : [1])
                {
                    specs.Add(new RunSpec(engine, workload, writers, options.Seconds, options.Records, options.Cold, IsWarmup: false));
                }

                foreach (RunSpec spec in specs)
                {
                    RunOutcome outcome = await RunOneAsync(spec, root, results);
                    failed |= outcome == RunOutcome.Failed;
                    if (outcome == RunOutcome.Skipped)
                    {
                        break; // an engine that cannot run a workload cannot run it at any K either
                    }
                }
            }
        }

        return failed;
    }

    /// <summary>
    /// Runs one engine on one workload in a fresh directory, printing and keeping its results unless it is a
    /// warm-up; says whether it ran, was skipped (the engine does not support the workload) or failed.
    /// </summary>
    private static async Task<RunOutcome> RunOneAsync(RunSpec spec, string root, List<CompareResult> results)
    {
        IEngine engine = spec.Engine;
        Workload workload = spec.Workload;
        string label = IsConcurrent(workload)
            ? $"{engine.Name} {Name(workload)} K={spec.Writers}"
            : $"{engine.Name} {Name(workload)}";
        if (spec.IsWarmup)
        {
            label += " (warm-up)";
        }

        string directory = Path.Combine(root, $"{engine.Name}-{Name(workload)}-{spec.Writers}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        Console.Error.WriteLine($"# {label}");

        try
        {
            Task<List<CompareResult>> run = workload switch
            {
                Workload.Append => Single(WorkloadRunner.AppendAsync(engine, directory, spec.Seconds)),
                Workload.Commit => Single(WorkloadRunner.CommitAsync(engine, directory, spec.Writers, spec.Seconds)),
                Workload.Outbox => Single(WorkloadRunner.OutboxAsync(engine, directory, spec.Writers, spec.Seconds)),
                Workload.OutboxLog => Single(WorkloadRunner.OutboxLogAsync(engine, directory, spec.Writers, spec.Seconds)),
                Workload.Scan => WorkloadRunner.ScanAsync(engine, directory, spec.Records, spec.Cold),
                Workload.TxnOverhead => WorkloadRunner.TransactionOverheadAsync(engine, directory, spec.Seconds),
                Workload.RcScan => WorkloadRunner.ReadCommittedScanAsync(engine, directory, spec.Records),
                Workload.KvPut => WorkloadRunner.KvPutAsync(engine, directory, spec.Writers, spec.Seconds, spec.Records),
                Workload.KvRead => TxLogOnly(engine, "kv-read", () => MvccWorkloads.KvReadAsync(engine.Name, directory, spec.Records, spec.Seconds)),
                Workload.MvccRecovery => TxLogOnly(engine, "mvcc-recovery", () => MvccWorkloads.RecoveryAsync(engine.Name, directory, spec.Records, spec.Cold)),
                Workload.MvccMemory => TxLogOnly(engine, "mvcc-memory", () => MvccWorkloads.MemoryAsync(engine.Name, directory, spec.Records)),
                _ => throw new ArgumentOutOfRangeException(nameof(workload)),
            };

            // A watchdog, not a timeout: a hung engine cannot be cancelled (its threads are blocked in the
            // engine), so the only useful thing left is to say which run hung and stop the process.
            TimeSpan limit = TimeSpan.FromSeconds(300 + 20 * spec.Seconds + spec.Records / 10_000.0);
            if (await Task.WhenAny(run, Task.Delay(limit)) != run)
            {
                Console.Error.WriteLine($"# {label} HUNG: no result after {limit.TotalSeconds:F0} s; aborting");
                Console.Out.Flush();
                TryDelete(directory);
                Environment.Exit(3);
            }

            List<CompareResult> measured = await run;
            if (spec.IsWarmup)
            {
                return RunOutcome.Done;
            }

            foreach (CompareResult result in measured)
            {
                Console.Out.WriteLine(result.ToJson());
                Console.Out.Flush();
                results.Add(result);
            }

            return RunOutcome.Done;
        }
        catch (NotSupportedException ex)
        {
            Console.Error.WriteLine($"# {label} skipped: {ex.Message}");
            return RunOutcome.Skipped;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"# {label} FAILED: {ex}");
            return RunOutcome.Failed;
        }
        finally
        {
            // Always cleaned: W4 and raw-prealloc leave hundreds of MB per run.
            TryDelete(directory);
        }
    }

    /// <summary>The workloads run with K concurrent writers (each K of <c>--writers</c>).</summary>
    private static bool IsConcurrent(Workload workload) =>
        workload is Workload.Commit or Workload.Outbox or Workload.OutboxLog or Workload.KvPut;

    /// <summary>Runs a TxLog-only MVCC workload on <c>txlog</c>; any other engine is skipped.</summary>
    private static Task<List<CompareResult>> TxLogOnly(IEngine engine, string name, Func<Task<List<CompareResult>>> run) =>
        engine is TxLogEngine
            ? run()
            : throw new NotSupportedException($"{name} measures TxLog's MVCC engine (TxLog only).");

    private static int Max(IReadOnlyList<int> values)
    {
        int max = 1;
        foreach (int value in values)
        {
            max = Math.Max(max, value);
        }

        return max;
    }

    private static async Task<List<CompareResult>> Single(Task<CompareResult> run) => [await run];

    private static List<IEngine> SelectEngines(IReadOnlyList<string>? names)
    {
        if (names is null)
        {
            return [.. _engines];
        }

        var selected = new List<IEngine>();
        foreach (string name in names)
        {
            IEngine? engine = Array.Find(_engines, e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase))
                ?? throw new ArgumentException(
                    $"unknown engine '{name}' (registered: {string.Join(", ", Array.ConvertAll(_engines, e => e.Name))})");
            if (!selected.Contains(engine))
            {
                selected.Add(engine);
            }
        }

        return selected;
    }

    private static string Name(Workload workload) => workload switch
    {
        Workload.Append => "append",
        Workload.Commit => "commit",
        Workload.Outbox => "outbox",
        Workload.OutboxLog => "outbox_log",
        Workload.Scan => "scan",
        Workload.TxnOverhead => "txn_overhead",
        Workload.RcScan => "rc_scan",
        Workload.KvPut => "kv_put",
        Workload.KvRead => "kv_read",
        Workload.MvccRecovery => "mvcc_recovery",
        Workload.MvccMemory => "mvcc_memory",
        _ => workload.ToString(),
    };

    private static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"# could not delete {directory}: {ex.Message}");
        }
    }

    /// <summary>
    /// Three tables: every figure of every result; ops/s per workload and K with one column per engine,
    /// followed by TxLog / peer ratios when TxLog was measured; and the ratios that have targets.
    /// </summary>
    internal static string FormatTables(IReadOnlyList<CompareResult> results, IReadOnlyList<IEngine> engines)
    {
        var text = new StringBuilder();
        if (results.Count == 0)
        {
            return "\nno results\n";
        }

        int workloadWidth = 10;
        int engineWidth = 14;
        foreach (CompareResult r in results)
        {
            workloadWidth = Math.Max(workloadWidth, r.Workload.Length);
            engineWidth = Math.Max(engineWidth, r.Engine.Length);
        }

        int[] figureWidths = [-engineWidth, -workloadWidth, 3, 11, 8, 12, 9, 9, 9, 12, 9];
        text.AppendLine();
        text.AppendLine("All figures");
        text.AppendLine(Row(["engine", "workload", "K", "ops", "seconds", "ops/s", "MB/s", "p50 us", "p99 us", "max us", "min ops"],
            figureWidths));
        foreach (CompareResult r in results)
        {
            text.AppendLine(Row(
                [r.Engine, r.Workload, Invariant(r.Writers), Invariant(r.Operations), r.Seconds.ToString("F3", CultureInfo.InvariantCulture),
                 r.OperationsPerSecond.ToString("F1", CultureInfo.InvariantCulture), r.MegabytesPerSecond.ToString("F2", CultureInfo.InvariantCulture),
                 Micros(r.P50Micros), Micros(r.P99Micros), Micros(r.MaxMicros), r.MinWriterOperations is { } m ? Invariant(m) : "-"],
                figureWidths));
        }

        // Columns: engines that produced a result, in registration order, then the references that are not
        // engines (the MVCC workloads' concurrentdictionary) in the order they were measured.
        var columns = new List<string>();
        foreach (IEngine engine in engines)
        {
            if (results.Any(r => r.Engine == engine.Name))
            {
                columns.Add(engine.Name);
            }
        }

        foreach (CompareResult r in results)
        {
            if (!columns.Contains(r.Engine))
            {
                columns.Add(r.Engine);
            }
        }

        bool hasSubject = columns.Contains(SubjectEngine);
        var peers = columns.FindAll(c => c != SubjectEngine);

        List<(string Workload, int Writers)> rows = Rows(results);

        var header = new List<string> { "workload", "K" };
        var widths = new List<int> { -workloadWidth, 3 };
        foreach (string column in columns)
        {
            header.Add(column);
            widths.Add(Math.Max(10, column.Length));
        }

        if (hasSubject)
        {
            foreach (string peer in peers)
            {
                string title = $"{SubjectEngine}/{peer}";
                header.Add(title);
                widths.Add(Math.Max(8, title.Length));
            }
        }

        text.AppendLine();
        text.AppendLine(hasSubject
            ? "ops/s (records/s; transactions/s for outbox and outbox_log) and the ratio txlog / peer"
            : "ops/s (records/s; transactions/s for outbox and outbox_log); no txlog result, so no ratios");
        text.AppendLine(Row(header, widths));
        foreach ((string workload, int writers) in rows)
        {
            var cells = new List<string> { workload, Invariant(writers) };
            foreach (string column in columns)
            {
                CompareResult? r = Find(results, column, workload, writers);
                cells.Add(r is null ? "-" : Compact(r.OperationsPerSecond));
            }

            if (hasSubject)
            {
                CompareResult? subject = Find(results, SubjectEngine, workload, writers);
                foreach (string peer in peers)
                {
                    CompareResult? other = Find(results, peer, workload, writers);
                    cells.Add(subject is null || other is null || other.OperationsPerSecond <= 0
                        ? "-"
                        : (subject.OperationsPerSecond / other.OperationsPerSecond).ToString("F2", CultureInfo.InvariantCulture) + "x");
                }
            }

            text.AppendLine(Row(cells, widths));
        }

        if (rows.Exists(r => r.Workload == "outbox_log"))
        {
            text.AppendLine("outbox_log: txlog commits one transaction over three topics (one partition each); sqlite inserts three");
            text.AppendLine("outbox rows in one transaction; raw, raw-prealloc and fasterlog are an EMULATION: the three messages are");
            text.AppendLine("appended as one entry of one log (no per-topic logs, nothing to make atomic across them).");
        }

        AppendTargets(text, results, rows);
        return text.ToString();
    }

    // Every ratio the runner reports against a target (or as a figure), for the results present.
    private static List<(string What, CompareResult? Numerator, CompareResult? Denominator, double? Target)> BuildChecks(
        IReadOnlyList<CompareResult> results, List<(string Workload, int Writers)> rows)
    {
        var checks = new List<(string What, CompareResult? Numerator, CompareResult? Denominator, double? Target)>();
        foreach ((string workload, int writers) in rows)
        {
            if (workload != "outbox_log")
            {
                continue;
            }

            CompareResult? txlog = Find(results, SubjectEngine, workload, writers);
            string at = $"outbox_log K={Invariant(writers)}";
            if (writers == 16)
            {
                checks.Add(($"{at}: txlog / raw-prealloc", txlog, Find(results, "raw-prealloc", workload, writers), 0.7));
                checks.Add(($"{at}: txlog / sqlite", txlog, Find(results, "sqlite", workload, writers), 4.0));
            }

            checks.Add(($"{at}: txlog / fasterlog", txlog, Find(results, "fasterlog", workload, writers), 1.0));
        }

        // W3 full form (issue 5): state and messages in one transaction, at K = 16.
        foreach ((string workload, int writers) in rows)
        {
            if (workload == "outbox" && writers == 16)
            {
                CompareResult? txlog = Find(results, SubjectEngine, workload, writers);
                checks.Add(("outbox K=16: txlog / raw-prealloc", txlog, Find(results, "raw-prealloc", workload, writers), 0.6));
                checks.Add(("outbox K=16: txlog / sqlite", txlog, Find(results, "sqlite", workload, writers), 3.5));
            }
        }

        // kv-put (issue 4): TxLog Instant against the physical limit at every K and against SQLite FULL at K = 16;
        // Periodic against SQLite NORMAL (the like-for-like pair without a per-commit fsync) has no target.
        foreach ((string workload, int writers) in rows)
        {
            if (workload != "kv_put_instant")
            {
                continue;
            }

            CompareResult? instant = Find(results, SubjectEngine, workload, writers);
            string at = $"kv_put K={Invariant(writers)}";
            checks.Add(($"{at}: txlog instant / raw-prealloc", instant, Find(results, "raw-prealloc", RawEngine.KvPutVariant, writers), 0.8));
            if (writers == 16)
            {
                checks.Add(($"{at}: txlog instant / sqlite full", instant, Find(results, "sqlite", "kv_put_full", writers), 3.0));
            }

            checks.Add(($"{at}: txlog periodic / sqlite normal", Find(results, SubjectEngine, "kv_put_periodic", writers),
                Find(results, "sqlite", "kv_put_normal", writers), null));
        }

        // kv-read: TxLog's snapshot reads against the in-memory ceiling (no target; the ratio is the figure).
        foreach ((string workload, int writers) in rows)
        {
            if (workload.StartsWith("kv_read", StringComparison.Ordinal))
            {
                checks.Add(($"{workload} K={Invariant(writers)}: txlog / {MvccWorkloads.DictionaryEngine}",
                    Find(results, SubjectEngine, workload, writers), Find(results, MvccWorkloads.DictionaryEngine, workload, writers), null));
            }
        }

        checks.Add(("txn_overhead: transactional / idempotent records/s",
            Find(results, SubjectEngine, "txn_overhead_transactional", 1), Find(results, SubjectEngine, "txn_overhead_idempotent", 1), 0.95));
        checks.Add(("rc_scan: read_committed / read_uncommitted records/s",
            Find(results, SubjectEngine, "scan_read_committed", 1), Find(results, SubjectEngine, "scan_read_uncommitted", 1), 0.9));

        checks.RemoveAll(c => c.Numerator is null || c.Denominator is null || c.Denominator.OperationsPerSecond <= 0);
        return checks;
    }

    /// <summary>
    /// The ratios with targets, each as numerator / denominator ops/s with its target and whether it is met:
    /// W3 log-only form (issue 3: txlog ≥ 0.7x raw-prealloc and ≥ 4x sqlite at K = 16, ≥ 1x fasterlog at every
    /// K), W3 full form (issue 5: ≥ 0.6x raw-prealloc and ≥ 3.5x sqlite at K = 16), kv-put (issue 4) and the
    /// TxLog-only pairs (transactional / idempotent ≥ 0.95, read-committed / read-uncommitted ≥ 0.9).
    /// </summary>
    private static void AppendTargets(StringBuilder text, IReadOnlyList<CompareResult> results, List<(string Workload, int Writers)> rows)
    {
        List<(string What, CompareResult? Numerator, CompareResult? Denominator, double? Target)> checks = BuildChecks(results, rows);
        AppendMvccFigures(text, results);
        if (checks.Count == 0)
        {
            return;
        }

        int whatWidth = 0;
        foreach ((string what, _, _, _) in checks)
        {
            whatWidth = Math.Max(whatWidth, what.Length);
        }

        int[] widths = [-whatWidth, 12, 12, 8, 8, -7];
        text.AppendLine();
        text.AppendLine("Ratios with targets (ops/s of numerator / denominator)");
        text.AppendLine(Row(["ratio", "numerator", "denominator", "ratio", "target", "met"], widths));
        foreach ((string what, CompareResult? numerator, CompareResult? denominator, double? target) in checks)
        {
            double ratio = numerator!.OperationsPerSecond / denominator!.OperationsPerSecond;
            text.AppendLine(Row(
                [what, Compact(numerator.OperationsPerSecond), Compact(denominator.OperationsPerSecond),
                 ratio.ToString(ratio < 0.1 ? "F3" : "F2", CultureInfo.InvariantCulture) + "x",
                 target is { } t ? ">= " + t.ToString("0.0#", CultureInfo.InvariantCulture) + "x" : "-",
                 target is { } goal ? (ratio >= goal ? "yes" : "NO") : "-"],
                widths));
        }

        AppendKvPutFairness(text, results);

        // Read-committed returns only the committed records while reading the same batches, so its records/s
        // ratio is capped near the committed share even for a reader exactly as fast as read-uncommitted.
        if (Find(results, SubjectEngine, "scan_read_uncommitted", 1) is { } ru && Find(results, SubjectEngine, "scan_read_committed", 1) is { } rc
            && rc.Seconds > 0 && ru.Operations > 0)
        {
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"rc_scan, same log scanned: RU time / RC time per scan = {ru.Seconds / rc.Seconds:F2}x (RC returned {rc.Operations} of {ru.Operations} records, {100.0 * rc.Operations / ru.Operations:F1}%)"));
        }
    }

    // Distinct (workload, K) in the order they were measured.
    private static List<(string Workload, int Writers)> Rows(IReadOnlyList<CompareResult> results)
    {
        var rows = new List<(string Workload, int Writers)>();
        foreach (CompareResult r in results)
        {
            if (!rows.Contains((r.Workload, r.Writers)))
            {
                rows.Add((r.Workload, r.Writers));
            }
        }

        return rows;
    }

    /// <summary>
    /// After several rounds: per targeted ratio, its value in each round (numerator and denominator measured
    /// side by side in that round), then the median, min and max over the rounds; "met" judges the median.
    /// </summary>
    internal static string FormatRoundsSummary(IReadOnlyList<IReadOnlyList<CompareResult>> rounds)
    {
        var ratios = new Dictionary<string, (double? Target, List<double> Values)>();
        var order = new List<string>();
        foreach (IReadOnlyList<CompareResult> results in rounds)
        {
            foreach ((string what, CompareResult? numerator, CompareResult? denominator, double? target) in BuildChecks(results, Rows(results)))
            {
                if (!ratios.TryGetValue(what, out var entry))
                {
                    entry = (target, new List<double>());
                    ratios.Add(what, entry);
                    order.Add(what);
                }

                entry.Values.Add(numerator!.OperationsPerSecond / denominator!.OperationsPerSecond);
            }
        }

        var text = new StringBuilder();
        text.AppendLine();
        text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Targeted ratios over {rounds.Count} rounds (each measured side by side within its round; met = median >= target)"));
        int whatWidth = 5;
        foreach (string what in order)
        {
            whatWidth = Math.Max(whatWidth, what.Length);
        }

        int[] widths = [-whatWidth, -40, 7, 7, 7, 8, -3];
        text.AppendLine(Row(["ratio", "rounds", "median", "min", "max", "target", "met"], widths));
        foreach (string what in order)
        {
            (double? target, List<double> values) = ratios[what];
            var sorted = new List<double>(values);
            sorted.Sort();
            double median = sorted.Count % 2 == 1
                ? sorted[sorted.Count / 2]
                : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
            var each = new StringBuilder();
            foreach (double v in values)
            {
                each.Append(each.Length == 0 ? "" : " ").Append(v.ToString("F2", CultureInfo.InvariantCulture));
            }

            text.AppendLine(Row(
                [what, each.ToString(), median.ToString("F2", CultureInfo.InvariantCulture) + "x", sorted[0].ToString("F2", CultureInfo.InvariantCulture) + "x",
                 sorted[^1].ToString("F2", CultureInfo.InvariantCulture) + "x",
                 target is { } t ? ">= " + t.ToString("0.0#", CultureInfo.InvariantCulture) + "x" : "-",
                 target is { } goal ? (median >= goal ? "yes" : "NO") : "-"],
                widths));
        }

        return text.ToString();
    }

    /// <summary>
    /// kv-put fairness: each result's least successful writer against the mean per writer. The target (no
    /// starved writer: min ≥ half the mean) is TxLog's; the peers' figures are shown for comparison.
    /// </summary>
    private static void AppendKvPutFairness(StringBuilder text, IReadOnlyList<CompareResult> results)
    {
        var kvPut = new List<CompareResult>();
        foreach (CompareResult r in results)
        {
            if (r.Workload.StartsWith("kv_put", StringComparison.Ordinal) && r.MinWriterOperations is not null && r.Writers > 1)
            {
                kvPut.Add(r);
            }
        }

        if (kvPut.Count == 0)
        {
            return;
        }

        int[] widths = [-14, -15, 3, 10, 10, 8, 8, -4];
        text.AppendLine();
        text.AppendLine("kv_put fairness (min_writer_ops / mean ops per writer; target for txlog: >= 0.5, no starved writer)");
        text.AppendLine(Row(["engine", "workload", "K", "min ops", "mean ops", "ratio", "target", "met"], widths));
        foreach (CompareResult r in kvPut)
        {
            double mean = r.Operations / (double)r.Writers;
            double ratio = mean > 0 ? r.MinWriterOperations!.Value / mean : 0;
            bool subject = r.Engine == SubjectEngine;
            text.AppendLine(Row(
                [r.Engine, r.Workload, Invariant(r.Writers), Invariant(r.MinWriterOperations!.Value), mean.ToString("F0", CultureInfo.InvariantCulture),
                 ratio.ToString("F2", CultureInfo.InvariantCulture), subject ? ">= 0.5" : "-", subject ? (ratio >= 0.5 ? "yes" : "NO") : "-"],
                widths));
        }
    }

    /// <summary>The figures of mvcc-recovery (seconds, MB/s of redo or checkpoint) and mvcc-memory (bytes per entry).</summary>
    private static void AppendMvccFigures(StringBuilder text, IReadOnlyList<CompareResult> results)
    {
        var lines = new List<string>();
        foreach (CompareResult r in results)
        {
            if (r.Workload.StartsWith("mvcc_recovery_redo", StringComparison.Ordinal))
            {
                lines.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{r.Workload}: reopen + recovery {r.Seconds:F3} s, replaying {r.Operations} transactions / {r.PayloadBytes / 1e6:F1} MB of redo = {r.MegabytesPerSecond:F1} MB/s"));
            }
            else if (r.Workload.StartsWith("mvcc_recovery_checkpoint", StringComparison.Ordinal))
            {
                lines.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{r.Workload}: reopen + recovery {r.Seconds:F3} s, loading {r.Operations} entries / {r.PayloadBytes / 1e6:F1} MB of checkpoint = {r.MegabytesPerSecond:F1} MB/s ({r.OperationsPerSecond / 1e6:F2} M entries/s)"));
            }
            else if (r.Workload == "mvcc_memory" && r.BytesPerEntry is { } perEntry)
            {
                lines.Add(string.Create(CultureInfo.InvariantCulture,
                    $"mvcc_memory {r.Engine}: {perEntry:F1} bytes/entry over {r.Operations} entries ({perEntry / (KvData.KeySize + KvData.ValueSize):F2}x the 116-byte key + value)"));
            }
        }

        if (lines.Count == 0)
        {
            return;
        }

        text.AppendLine();
        text.AppendLine("MVCC recovery and memory");
        foreach (string line in lines)
        {
            text.AppendLine(line);
        }
    }

    private static CompareResult? Find(IReadOnlyList<CompareResult> results, string engine, string workload, int writers)
    {
        foreach (CompareResult r in results)
        {
            if (r.Engine == engine && r.Workload == workload && r.Writers == writers)
            {
                return r;
            }
        }

        return null;
    }

    /// <summary>Pads each cell to its width: negative widths left-align (text), positive right-align (numbers).</summary>
    private static string Row(IReadOnlyList<string> cells, IReadOnlyList<int> widths)
    {
        var line = new StringBuilder();
        for (int i = 0; i < cells.Count; i++)
        {
            if (i > 0)
            {
                line.Append("  ");
            }

            int width = widths[i];
            line.Append(width < 0 ? cells[i].PadRight(-width) : cells[i].PadLeft(width));
        }

        return line.ToString().TrimEnd();
    }

    private static string Micros(double? value) =>
        value is { } v ? v.ToString("F1", CultureInfo.InvariantCulture) : "-";

    private static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>4.06 M, 22.6 k, 950: the shape of the reference table in WORKLOADS.md.</summary>
    private static string Compact(double value) => value switch
    {
        >= 1e6 => (value / 1e6).ToString("F2", CultureInfo.InvariantCulture) + " M",
        >= 1e3 => (value / 1e3).ToString("F1", CultureInfo.InvariantCulture) + " k",
        _ => value.ToString("F0", CultureInfo.InvariantCulture),
    };

    /// <summary>How one run ended.</summary>
    private enum RunOutcome
    {
        Done,
        Skipped,
        Failed,
    }

    /// <summary>One run: what to measure and with which parameters.</summary>
    private sealed record RunSpec(IEngine Engine, Workload Workload, int Writers, double Seconds, long Records, bool Cold, bool IsWarmup);
}
