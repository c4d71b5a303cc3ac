using System.Globalization;
using System.Text;
using TxLog.Durability;
using TxLog.Records;

namespace TxLog.CrashChild;

/// <summary>
/// Child process of the kill -9 tests. Usage: <c>TxLog.CrashChild &lt;mode&gt; &lt;dataDir&gt; [--name value]...</c>
/// Modes:
/// <list type="bullet">
/// <item><c>append</c>: opens the store in <see cref="DurabilityMode.GroupCommit"/>, creates the topic if
/// missing, prints <c>READY</c>, then runs <c>--writers</c> concurrent appenders. Writer w appends
/// batches of 1 to <c>--max-batch-records</c> records (see <see cref="CrashRecord"/>) with AppendAsync and,
/// once a batch is acknowledged, prints <c>ACK &lt;writer&gt; &lt;seq&gt; &lt;offset&gt;</c> per record. Runs
/// until killed (or <c>--max-seconds</c>, then exits with code 3).</item>
/// <item><c>txn</c> and <c>mvcc</c>: see <see cref="TransactionalModes"/>.</item>
/// <item><c>hold-lock</c>: opens the store, prints <c>READY</c> and keeps it open until stdin closes,
/// then closes it and exits 0. If the directory is locked, prints <c>LOCKED &lt;message&gt;</c> and exits 4.</item>
/// </list>
/// Every line is written with one write(2) to unbuffered stdout, so a line the parent reads whole
/// was printed whole, and nothing acknowledged is left in a buffer when the process dies.
/// </summary>
internal static class Program
{
    private const int ExitUsage = 2;
    private const int ExitTimeUp = 3;
    private const int ExitLocked = 4;

    private static readonly Stream StandardOutput = Console.OpenStandardOutput();
    private static readonly object OutputLock = new();

    private static async Task<int> Main(string[] args)
    {
        if (args.Length < 2 || !TryParseOptions(args.AsSpan(2), out Dictionary<string, string> options))
        {
            await Console.Error.WriteLineAsync("usage: TxLog.CrashChild <append|txn|mvcc|pipeline|hold-lock> <dataDir> [--name value]...");
            return ExitUsage;
        }

        string directory = args[1];
        try
        {
            return args[0] switch
            {
                "append" => await AppendAsync(directory, options),
                "txn" => await TransactionalModes.TransactionsAsync(directory, Option(options, "run", 0), WriteLine),
                "mvcc" => TransactionalModes.Mvcc(directory, Option(options, "run", 0), WriteLine),
                "pipeline" => await PipelineMode.RunAsync(directory, WriteLine),
                "hold-lock" => HoldLock(directory),
                _ => ExitUsage,
            };
        }
        catch (LogDirectoryLockedException e)
        {
            WriteLine("LOCKED " + e.Message);
            return ExitLocked;
        }
    }

    private static async Task<int> AppendAsync(string directory, Dictionary<string, string> options)
    {
        int writers = Option(options, "writers", 4);
        int run = Option(options, "run", 0);
        int maxBatchRecords = Option(options, "max-batch-records", 3);
        int maxSeconds = Option(options, "max-seconds", 30);
        string topic = options.GetValueOrDefault("topic", "crash");
        var storeOptions = new LogStoreOptions { Durability = DurabilityMode.GroupCommit };
        if (options.TryGetValue("segment-bytes", out string? segmentBytes))
        {
            // Small segments make the children crash in and around rolls too.
            storeOptions.SegmentBytes = long.Parse(segmentBytes, CultureInfo.InvariantCulture);
            storeOptions.MaxBatchBytes = (int)Math.Min(storeOptions.MaxBatchBytes, storeOptions.SegmentBytes);
        }

        using LogStore store = LogStore.Open(directory, storeOptions);
        if (!store.TopicExists(topic))
        {
            store.CreateTopic(topic);
        }

        LogPartition partition = store.GetPartition(topic, 0);
        WriteLine("READY");
        using var timeUp = new CancellationTokenSource(TimeSpan.FromSeconds(maxSeconds));
        var tasks = new Task[writers];
        for (int w = 0; w < writers; w++)
        {
            int writer = w;
            tasks[w] = Task.Run(() => WriteAsync(partition, run, writer, maxBatchRecords, timeUp.Token));
        }

        await Task.WhenAll(tasks);
        return ExitTimeUp;
    }

    private static async Task WriteAsync(LogPartition partition, int run, int writer, int maxBatchRecords, CancellationToken timeUp)
    {
        long sequence = 0;
        var line = new StringBuilder();
        while (!timeUp.IsCancellationRequested)
        {
            int count = 1 + (int)((sequence + writer) % maxBatchRecords);
            var messages = new Message[count];
            for (int i = 0; i < count; i++)
            {
                messages[i] = CrashRecord.Create(run, writer, sequence + i);
            }

            AppendResult result = await partition.AppendAsync(messages);

            // One write for all lines of the batch: a kill leaves whole lines.
            line.Clear();
            for (int i = 0; i < count; i++)
            {
                line.Append(CultureInfo.InvariantCulture, $"ACK {writer} {sequence + i} {result.BaseOffset + i}\n");
            }

            Write(line.ToString());
            sequence += count;
        }
    }

    private static int HoldLock(string directory)
    {
        using LogStore store = LogStore.Open(directory);
        WriteLine("READY");
        using Stream input = Console.OpenStandardInput();
        byte[] buffer = new byte[256];
        while (input.Read(buffer) > 0)
        {
            // Wait for the parent to close stdin (or to die).
        }

        return 0;
    }

    private static void WriteLine(string line) => Write(line + "\n");

    private static void Write(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        lock (OutputLock)
        {
            StandardOutput.Write(bytes);
            StandardOutput.Flush();
        }
    }

    private static int Option(Dictionary<string, string> options, string name, int fallback) =>
        options.TryGetValue(name, out string? text) ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

    private static bool TryParseOptions(ReadOnlySpan<string> args, out Dictionary<string, string> options)
    {
        options = new Dictionary<string, string>(StringComparer.Ordinal);
        if (args.Length % 2 != 0)
        {
            return false;
        }

        for (int i = 0; i < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                return false;
            }

            options[args[i][2..]] = args[i + 1];
        }

        return true;
    }
}
