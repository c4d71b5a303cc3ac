using System.CommandLine;
using Spectre.Console;
using TxLog.Inspection;
using static TxLog.Cli.Commands.CliSupport;

namespace TxLog.Cli.Commands;

/// <summary>
/// <c>txlog verify &lt;data-dir&gt;</c>: read-only check of a whole data directory (see
/// <see cref="StoreVerifier"/>). Prints every problem with its file and byte position. Exit code 0
/// when no error was found (warnings and notes do not count), 1 when one was, 2 for usage errors. On
/// a store that another process has open it warns on stderr and checks anyway, treating the active
/// segments as an unclean close would leave them.
/// </summary>
internal static class VerifyCommand
{
    /// <summary>Directories with at least this many segment bytes get a progress bar (on a terminal).</summary>
    public const long ProgressThresholdBytes = 64L << 20;

    public static Command Create(CliContext context, Option<int> maxBatchBytes)
    {
        var directory = new Argument<string>("data-dir") { Description = "The store's data directory" };
        var noProgress = new Option<bool>("--no-progress") { Description = "Never show a progress bar (it is shown only on a terminal, for directories of 64 MiB or more)" };
        var command = new Command("verify", "Check every batch CRC, offset order, index, producer snapshot, checkpoint and the topic list; read-only");
        command.Arguments.Add(directory);
        command.Options.Add(noProgress);
        command.SetAction(result => Run(context, result.GetRequiredValue(directory), result.GetValue(noProgress), result.GetValue(maxBatchBytes)));
        return command;
    }

    private static int Run(CliContext context, string path, bool noProgress, int maxBatchBytes)
    {
        DataDirectory directory = RequireDataDirectory(path);
        bool open = WarnIfOpen(context, directory);
        var verifier = new StoreVerifier(directory.Path, maxBatchBytes, open);
        TextWriter o = context.Out;
        o.WriteLine($"Verifying {directory.Path}");
        o.WriteLine("Store: " + (open
            ? "open by another process (the active segments are checked as after an unclean close)"
            : verifier.CleanShutdown ? "closed cleanly" : "closed without a clean shutdown (the store recovers at the next open)"));

        VerifyReport report;
        long total = verifier.TotalLogBytes();
        if (context.Interactive && !noProgress && total >= ProgressThresholdBytes)
        {
            report = null!;
            context.Console.Progress()
                .AutoClear(true)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    ProgressTask task = ctx.AddTask("Verifying segments", maxValue: total);
                    report = verifier.Run(done => task.Value = Math.Min(done, total));
                    task.Value = total;
                });
        }
        else
        {
            report = verifier.Run();
        }

        foreach (VerifyFinding finding in report.Findings)
        {
            string severity = finding.Severity switch
            {
                FindingSeverity.Error => "error",
                FindingSeverity.Warning => "warning",
                _ => "note",
            };
            string where = finding.Position is { } position ? $"{finding.File}, position {Num(position)}" : finding.File;
            o.WriteLine($"{severity}: {where}: {finding.Message}");
        }

        o.WriteLine(
            $"Checked {report.Topics} topics, {report.Partitions} partitions, {report.Segments} segments ({Num(report.LogBytes)} bytes, " +
            $"{Num(report.Batches)} batches, {Num(report.Records)} records), {report.IndexFiles} index files, {report.Snapshots} producer snapshots, {report.Checkpoints} checkpoints.");
        if (report.Errors > 0)
        {
            o.WriteLine($"Result: FAILED: {report.Errors} error(s), {report.Warnings} warning(s).");
            return Program.ExitProblem;
        }

        o.WriteLine($"Result: OK: no errors, {report.Warnings} warning(s).");
        return Program.ExitOk;
    }
}
