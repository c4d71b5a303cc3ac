using System.CommandLine;
using System.CommandLine.Invocation;
using TxLog.Cli.Commands;

namespace TxLog.Cli;

/// <summary>
/// Entry point of the <c>txlog</c> tool: <c>dump</c>, <c>verify</c>, <c>topics</c>,
/// <c>transactions</c>, <c>groups</c> and <c>abort</c> on a TxLog data directory (see docs/cli.md).
/// Exit codes: 0 success, 1 a problem was found or the operation failed, 2 usage error (bad
/// arguments, missing directory).
/// </summary>
public static class Program
{
    /// <summary>Exit code: success.</summary>
    public const int ExitOk = 0;

    /// <summary>Exit code: a problem was found (verify, dump) or the command could not do its job.</summary>
    public const int ExitProblem = 1;

    /// <summary>Exit code: usage error (unknown command or option, missing argument, missing directory).</summary>
    public const int ExitUsage = 2;

    /// <summary>Runs the tool on the process console.</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <returns>The process exit code.</returns>
    public static int Main(string[] args)
    {
        bool interactive = !Console.IsOutputRedirected;
        return Run(args, new CliContext(Console.Out, Console.Error, Console.In, TimeProvider.System, interactive, inputIsTerminal: !Console.IsInputRedirected));
    }

    /// <summary>
    /// Runs the tool in-process with the given writers (no terminal: plain output, no colours, no
    /// progress bars, tables 240 columns wide) and no standard input.
    /// </summary>
    /// <param name="args">Command-line arguments.</param>
    /// <param name="stdout">Where normal output goes.</param>
    /// <param name="stderr">Where errors and warnings go.</param>
    /// <returns>The exit code.</returns>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) =>
        Run(args, stdout, stderr, TextReader.Null);

    /// <summary>Runs the tool in-process with the given writers and standard input (see <see cref="Run(string[], TextWriter, TextWriter)"/>).</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <param name="stdout">Where normal output goes.</param>
    /// <param name="stderr">Where errors and warnings go.</param>
    /// <param name="stdin">Where the confirmation of <c>abort</c> is read from.</param>
    /// <returns>The exit code.</returns>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, TextReader stdin)
    {
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        ArgumentNullException.ThrowIfNull(stdin);
        return Run(args, new CliContext(stdout, stderr, stdin, TimeProvider.System, interactive: false));
    }

    internal static int Run(string[] args, CliContext context)
    {
        ArgumentNullException.ThrowIfNull(args);
        (RootCommand root, Option<int> maxBatchBytes) = BuildCommands(context);
        ParseResult parsed = root.Parse(args);
        if (parsed.Action is ParseErrorAction || (parsed.Action is null && parsed.Errors.Count > 0))
        {
            foreach (System.CommandLine.Parsing.ParseError error in parsed.Errors)
            {
                context.Error.WriteLine("error: " + error.Message);
            }

            context.Error.WriteLine("Run 'txlog --help' for usage.");
            return ExitUsage;
        }

        if (parsed.GetValue(maxBatchBytes) <= Records.RecordBatchLayout.HeaderSize)
        {
            context.Error.WriteLine($"error: --max-batch-bytes must be larger than {Records.RecordBatchLayout.HeaderSize}.");
            return ExitUsage;
        }

        try
        {
            return parsed.Invoke(new InvocationConfiguration
            {
                Output = context.Out,
                Error = context.Error,
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null,
            });
        }
        catch (UsageException e)
        {
            context.Error.WriteLine("error: " + e.Message);
            return ExitUsage;
        }
        catch (Exception e) when (e is TxLogException or IOException or UnauthorizedAccessException or InvalidOperationException or TimeoutException)
        {
            context.Error.WriteLine("error: " + e.Message);
            return ExitProblem;
        }
        catch (Exception e)
        {
            // Never a stack trace and exit 134: the documented exit codes hold for the unexpected too.
            context.Error.WriteLine($"error: internal: {e.GetType().Name}: {e.Message}");
            return ExitProblem;
        }
    }

    private static (RootCommand Root, Option<int> MaxBatchBytes) BuildCommands(CliContext context)
    {
        var maxBatchBytes = new Option<int>("--max-batch-bytes")
        {
            Description = "Largest batch accepted when reading, header included (the store's LogStoreOptions.MaxBatchBytes)",
            DefaultValueFactory = _ => new LogStoreOptions().MaxBatchBytes,
            Recursive = true,
        };

        var root = new RootCommand("Inspect, verify and repair TxLog data directories (Kafka RecordBatch v2 segments, transactions, consumer groups).");
        root.Options.Add(maxBatchBytes);
        root.Subcommands.Add(DumpCommand.Create(context, maxBatchBytes));
        root.Subcommands.Add(VerifyCommand.Create(context, maxBatchBytes));
        root.Subcommands.Add(TopicsCommand.Create(context, maxBatchBytes));
        root.Subcommands.Add(TransactionsCommand.Create(context, maxBatchBytes));
        root.Subcommands.Add(GroupsCommand.Create(context, maxBatchBytes));
        root.Subcommands.Add(AbortCommand.Create(context, maxBatchBytes));
        return (root, maxBatchBytes);
    }
}
