using System.Globalization;
using System.Text;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// <c>compare</c>: runs the WORKLOADS.md workloads against every registered engine in one process, prints
/// one JSON line per result on stdout as it is measured, then a table of every figure and, when a
/// <c>txlog</c> result exists, the ratio TxLog / peer for each workload and writer count. Progress and
/// skips go to stderr, so stdout holds only the results.
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

        var results = new List<CompareResult>();
        bool failed = false;
        try
        {
            foreach (Workload workload in options.Workloads)
            {
                bool concurrent = workload is Workload.Commit or Workload.Outbox;
                foreach (IEngine engine in engines)
                {
                    if (options.WarmupSeconds > 0)
                    {
                        // Untimed: lets the JIT optimize the engine's and the runner's hot paths first, so the
                        // first engine measured is not the one paying for tier-0 code. The largest K exercises
                        // the followers' paths as well as the leader's.
                        var warmup = new RunSpec(engine, workload, concurrent ? Max(options.Writers) : 1,
                            options.WarmupSeconds, Math.Min(options.Records, WarmupRecords), Cold: false, IsWarmup: true);
                        failed |= !await RunOneAsync(warmup, root, results);
                    }

                    if (concurrent)
                    {
                        foreach (int writers in options.Writers)
                        {
                            failed |= !await RunOneAsync(
                                new RunSpec(engine, workload, writers, options.Seconds, options.Records, options.Cold, IsWarmup: false),
                                root, results);
                        }
                    }
                    else
                    {
                        failed |= !await RunOneAsync(
                            new RunSpec(engine, workload, 1, options.Seconds, options.Records, options.Cold, IsWarmup: false),
                            root, results);
                    }
                }
            }

            Console.Out.Write(FormatTables(results, engines));
            Console.Out.Flush();
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

    /// <summary>
    /// Runs one engine on one workload in a fresh directory, printing and keeping its results unless it is a
    /// warm-up; false if the run failed.
    /// </summary>
    private static async Task<bool> RunOneAsync(RunSpec spec, string root, List<CompareResult> results)
    {
        IEngine engine = spec.Engine;
        Workload workload = spec.Workload;
        string label = workload is Workload.Commit or Workload.Outbox
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
                Workload.Scan => WorkloadRunner.ScanAsync(engine, directory, spec.Records, spec.Cold),
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
                return true;
            }

            foreach (CompareResult result in measured)
            {
                Console.Out.WriteLine(result.ToJson());
                Console.Out.Flush();
                results.Add(result);
            }

            return true;
        }
        catch (NotSupportedException ex)
        {
            Console.Error.WriteLine($"# {label} skipped: {ex.Message}");
            return true;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"# {label} FAILED: {ex}");
            return false;
        }
        finally
        {
            // Always cleaned: W4 and raw-prealloc leave hundreds of MB per run.
            TryDelete(directory);
        }
    }

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
        Workload.Scan => "scan",
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
    /// Two tables: every figure of every result, then ops/s per workload and K with one column per engine,
    /// followed by TxLog / peer ratios when TxLog was measured.
    /// </summary>
    internal static string FormatTables(IReadOnlyList<CompareResult> results, IReadOnlyList<IEngine> engines)
    {
        var text = new StringBuilder();
        if (results.Count == 0)
        {
            return "\nno results\n";
        }

        text.AppendLine();
        text.AppendLine("All figures");
        text.AppendLine(Row(["engine", "workload", "K", "ops", "seconds", "ops/s", "MB/s", "p50 us", "p99 us", "max us", "min ops"],
            [-14, -10, 3, 11, 8, 12, 9, 9, 9, 12, 9]));
        foreach (CompareResult r in results)
        {
            text.AppendLine(Row(
                [r.Engine, r.Workload, Invariant(r.Writers), Invariant(r.Operations), r.Seconds.ToString("F3", CultureInfo.InvariantCulture),
                 r.OperationsPerSecond.ToString("F1", CultureInfo.InvariantCulture), r.MegabytesPerSecond.ToString("F2", CultureInfo.InvariantCulture),
                 Micros(r.P50Micros), Micros(r.P99Micros), Micros(r.MaxMicros), r.MinWriterOperations is { } m ? Invariant(m) : "-"],
                [-14, -10, 3, 11, 8, 12, 9, 9, 9, 12, 9]));
        }

        // Columns: engines that produced a result, in registration order.
        var columns = new List<string>();
        foreach (IEngine engine in engines)
        {
            if (results.Any(r => r.Engine == engine.Name))
            {
                columns.Add(engine.Name);
            }
        }

        bool hasSubject = columns.Contains(SubjectEngine);
        var peers = columns.FindAll(c => c != SubjectEngine);

        // Rows: distinct (workload, K) in the order they were measured.
        var rows = new List<(string Workload, int Writers)>();
        foreach (CompareResult r in results)
        {
            if (!rows.Contains((r.Workload, r.Writers)))
            {
                rows.Add((r.Workload, r.Writers));
            }
        }

        var header = new List<string> { "workload", "K" };
        var widths = new List<int> { -10, 3 };
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
            ? "ops/s (records/s; transactions/s for outbox) and the ratio txlog / peer"
            : "ops/s (records/s; transactions/s for outbox); no txlog result, so no ratios");
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

        return text.ToString();
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

    /// <summary>One run: what to measure and with which parameters.</summary>
    private sealed record RunSpec(IEngine Engine, Workload Workload, int Writers, double Seconds, long Records, bool Cold, bool IsWarmup);
}
