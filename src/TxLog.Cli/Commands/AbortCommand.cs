using System.CommandLine;
using TxLog.Coordination;
using TxLog.Inspection;
using TxLog.Records;
using static TxLog.Cli.Commands.CliSupport;

namespace TxLog.Cli.Commands;

/// <summary>
/// <c>txlog abort &lt;data-dir&gt; &lt;transactional-id&gt;</c>: aborts a hanging transaction of a
/// CLOSED store (like <c>kafka-transactions.sh abort</c>). It inspects the directory read-only, shows
/// what will happen, asks for confirmation (unless <c>--yes</c>), then opens the store with
/// <see cref="LogStore.Open"/> (taking its lock), calls <see cref="LogStore.AbortTransactionAsync"/>
/// and closes it cleanly. Opening a store runs recovery, which itself aborts every transaction a
/// previous session left open (ABORT markers at the producer's epoch, docs/transactions.md); the
/// command says so, lists every transaction the open will finish, and reports what recovery did.
/// Exit codes: 0 aborted (or nothing open to abort), 1 the store is open elsewhere, the id is unknown,
/// the commit is already decided, the user did not confirm, or the abort failed; 2 usage.
/// </summary>
internal static class AbortCommand
{
    public static Command Create(CliContext context, Option<int> maxBatchBytes)
    {
        var directory = new Argument<string>("data-dir") { Description = "The store's data directory (the store must be closed)" };
        var transactionalId = new Argument<string>("transactional-id") { Description = "The transactional id whose open transaction to abort" };
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask for confirmation" };
        var command = new Command("abort", "Abort the hanging transaction of a transactional id on a closed store (asks for confirmation)");
        command.Arguments.Add(directory);
        command.Arguments.Add(transactionalId);
        command.Options.Add(yes);
        command.SetAction(result => Run(context, result.GetRequiredValue(directory), result.GetRequiredValue(transactionalId), result.GetValue(yes), result.GetValue(maxBatchBytes)));
        return command;
    }

    private static int Run(CliContext context, string path, string id, bool yes, int maxBatchBytes)
    {
        DataDirectory directory = RequireDataDirectory(path);
        if (directory.ProbeLock() == StoreLockState.Held)
        {
            StoreIsOpen(context, id);
            return Program.ExitProblem;
        }

        long now = context.Time.GetUtcNow().ToUnixTimeMilliseconds();
        List<TransactionInfo> all = StoreInspection.Open(directory.Path, maxBatchBytes).Transactions();
        TransactionInfo? target = all.FirstOrDefault(t => t.TransactionalId == id);
        if (target is null)
        {
            context.Error.WriteLine($"error: transactional id '{id}' is unknown (no record of it in {TransactionCoordinator.TopicName}); 'txlog transactions {path}' lists the known ids");
            return Program.ExitProblem;
        }

        if (!target.IsOpen)
        {
            context.Out.WriteLine($"Transactional id '{id}' (producer {Num(target.ProducerId)}, epoch {Num(target.Epoch)}) has no open transaction (state {target.State}); nothing to abort.");
            return Program.ExitOk;
        }

        if (target.RecoveryOutcome == ControlRecordType.Commit)
        {
            string why = target.State == TransactionState.Ongoing
                ? "it was committed, but a COMMIT marker is missing: recovery writes it"
                : $"{target.State} with all its data present";
            context.Error.WriteLine($"error: the commit of '{id}' is already decided ({why}): opening the store completes the commit; it cannot be aborted");
            return Program.ExitProblem;
        }

        context.Out.WriteLine($"Transaction of '{id}' (producer {Num(target.ProducerId)}, epoch {Num(target.Epoch)}) is {target.State} on {Describe(target)}{Age(target, now)}.");
        var others = all.Where(t => t.IsOpen && !ReferenceEquals(t, target)).ToList();
        if (others.Count > 0)
        {
            context.Out.WriteLine("Opening the store also finishes every other transaction left open (TxLog recovery):");
            foreach (TransactionInfo other in others)
            {
                string outcome = other.RecoveryOutcome == ControlRecordType.Commit ? "commit" : "abort";
                context.Out.WriteLine($"  {outcome}: '{other.TransactionalId ?? "(unknown id)"}' (producer {Num(other.ProducerId)}) on {Describe(other)}{Age(other, now)}");
            }
        }

        if (!yes)
        {
            context.Out.Write($"Abort the transaction of '{id}'? [y/N] ");
            context.Out.Flush();
            string? answer = context.In.ReadLine()?.Trim();
            if (!context.InputIsTerminal)
            {
                context.Out.WriteLine(); // the answer was not echoed: end the prompt's line
            }

            if (!string.Equals(answer, "y", StringComparison.OrdinalIgnoreCase) && !string.Equals(answer, "yes", StringComparison.OrdinalIgnoreCase))
            {
                context.Out.WriteLine("Not confirmed; nothing was changed.");
                return Program.ExitProblem;
            }
        }

        bool abortedByApi;
        List<string> recovery;
        try
        {
            using LogStore store = LogStore.Open(directory.Path, new LogStoreOptions { TimeProvider = context.Time, MaxBatchBytes = maxBatchBytes });
            recovery = store.Recovery.Actions.ToList();
            abortedByApi = store.AbortTransactionAsync(id).AsTask().GetAwaiter().GetResult();
        }
        catch (LogDirectoryLockedException)
        {
            StoreIsOpen(context, id);
            return Program.ExitProblem;
        }

        foreach (string action in recovery)
        {
            context.Out.WriteLine("recovery: " + action.Replace(directory.Path + Path.DirectorySeparatorChar, "", StringComparison.Ordinal));
        }

        TransactionInfo? after = StoreInspection.Open(directory.Path, maxBatchBytes).Transactions().FirstOrDefault(t => t.TransactionalId == id);
        if (after is { IsOpen: true })
        {
            context.Error.WriteLine($"error: the transaction of '{id}' is still {after.State} after the store was opened and closed");
            return Program.ExitProblem;
        }

        context.Out.WriteLine(abortedByApi
            ? $"Aborted the transaction of '{id}' (producer {Num(target.ProducerId)}): ABORT markers written to {Describe(target)}; the producer is fenced (epoch {Num(after?.Epoch ?? target.Epoch)})."
            : $"Aborted the transaction of '{id}' (producer {Num(target.ProducerId)}): the store's recovery wrote ABORT markers to {Describe(target)} when it opened; the store is closed again.");
        return Program.ExitOk;
    }

    private static void StoreIsOpen(CliContext context, string id) =>
        context.Error.WriteLine($"error: the store is open by another process (its lock file {LogStore.LockFileName} is held); abort needs it closed. Stop that process, or call LogStore.AbortTransactionAsync(\"{id}\") from inside it.");

    private static string Describe(TransactionInfo t) =>
        t.Partitions.Count == 0 ? "no partitions" : string.Join(", ", t.Partitions.Select(p => p.FirstOffset is { } first ? $"{p.Partition} (from offset {Num(first)})" : p.Partition.ToString()));

    private static string Age(TransactionInfo t, long now) =>
        t.StartedMs is { } started ? $", open for {FormatAge(CliSupport.Age(now, started))}" : "";
}
