using System.CommandLine;
using Spectre.Console;
using TxLog.Coordination;
using TxLog.Inspection;
using TxLog.Records;
using static TxLog.Cli.Commands.CliSupport;

namespace TxLog.Cli.Commands;

/// <summary>
/// <c>txlog transactions &lt;data-dir&gt;</c>: the coordinator's state replayed read-only from
/// <c>__transaction_state</c>, combined with the transactions the partitions hold open (like Kafka's
/// <c>kafka-transactions.sh list</c> and <c>find-hanging</c>): transactional id, producer id, epoch,
/// state, partitions and, for open transactions, when they started, their age and what opening the
/// store would do with them. <c>--open</c> and <c>--hanging-minutes N</c> filter.
/// </summary>
internal static class TransactionsCommand
{
    public static Command Create(CliContext context, Option<int> maxBatchBytes)
    {
        var directory = new Argument<string>("data-dir") { Description = "The store's data directory" };
        var open = new Option<bool>("--open") { Description = "Only open transactions (Ongoing or Prepare*)" };
        var hanging = new Option<int?>("--hanging-minutes")
        {
            Description = "Only open transactions older than N minutes (like kafka-transactions.sh find-hanging)",
        };
        var command = new Command("transactions", "List transactional ids and open transactions with their age (read-only replay of __transaction_state)");
        command.Arguments.Add(directory);
        command.Options.Add(open);
        command.Options.Add(hanging);
        command.SetAction(result => Run(context, result.GetRequiredValue(directory), result.GetValue(open), result.GetValue(hanging), result.GetValue(maxBatchBytes)));
        return command;
    }

    private static int Run(CliContext context, string path, bool openOnly, int? hangingMinutes, int maxBatchBytes)
    {
        if (hangingMinutes is < 0)
        {
            throw new UsageException("--hanging-minutes must not be negative");
        }

        StoreInspection store = Inspect(context, path, maxBatchBytes);
        long now = context.Time.GetUtcNow().ToUnixTimeMilliseconds();
        List<TransactionInfo> all = store.Transactions();
        var shown = all.Where(t =>
        {
            if ((openOnly || hangingMinutes is not null) && !t.IsOpen)
            {
                return false;
            }

            return hangingMinutes is not { } minutes
                || (t.StartedMs is { } started && now - started >= (long)minutes * 60_000);
        }).ToList();

        foreach (string problem in store.Problems)
        {
            context.Error.WriteLine("warning: " + problem);
        }

        if (shown.Count == 0)
        {
            context.Out.WriteLine(hangingMinutes is { } m ? $"No transactions open for {m} minutes or more."
                : openOnly ? "No open transactions." : "No transactional ids.");
            return Program.ExitOk;
        }

        Table table = context.NewTable("Transactional id", "Producer id", "Epoch", "State", "Partitions", "Started", "Age", "Timeout", "At next open");
        foreach (TransactionInfo t in shown)
        {
            string partitions = string.Join(", ", t.Partitions.Select(p => p.FirstOffset is { } first ? $"{p.Partition}@{Num(first)}" : p.Partition.ToString()));
            table.AddRow(
                new Text(t.TransactionalId ?? "(unknown)"),
                new Text(Num(t.ProducerId)),
                new Text(Num(t.Epoch)),
                new Text(t.State.ToString()),
                new Text(partitions.Length == 0 ? "-" : partitions),
                new Text(t.IsOpen && t.StartedMs is { } s ? FormatTimestamp(s) : "-"),
                new Text(t.IsOpen && t.StartedMs is { } s2 ? FormatAge(CliSupport.Age(now, s2)) : "-"),
                new Text(t.TimeoutMs >= 0 ? FormatAge(CliSupport.Age(t.TimeoutMs, 0)) : "-"),
                new Text(t.IsOpen ? Outcome(t) : "-"));
        }

        context.Console.Write(table);
        int open = shown.Count(t => t.IsOpen);
        if (open > 0)
        {
            context.Out.WriteLine($"{open} open transaction(s): partitions are listed as topic-partition@first offset. Opening the store aborts every Ongoing transaction (recovery); see 'txlog abort'.");
        }

        return Program.ExitOk;
    }

    private static string Outcome(TransactionInfo t) => t.RecoveryOutcome switch
    {
        ControlRecordType.Commit => "commit (decided)",
        _ => t.State == TransactionState.PrepareCommit ? "abort (data missing)" : "abort",
    };
}
