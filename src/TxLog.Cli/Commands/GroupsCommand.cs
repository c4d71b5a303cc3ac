using System.CommandLine;
using Spectre.Console;
using TxLog.Inspection;
using static TxLog.Cli.Commands.CliSupport;

namespace TxLog.Cli.Commands;

/// <summary>
/// <c>txlog groups &lt;data-dir&gt;</c>: committed offsets per consumer group, replayed read-only from
/// <c>__consumer_offsets</c> as the store applies them (offsets sent to a transaction count only once
/// its COMMIT marker is there), and each one's lag against the partition's high watermark
/// (read-uncommitted end) and last stable offset (read-committed end). For a closed store the HW is
/// the log end offset after recovery's rules and the LSO the first offset of the earliest transaction
/// with no marker, else the HW.
/// </summary>
internal static class GroupsCommand
{
    public static Command Create(CliContext context, Option<int> maxBatchBytes)
    {
        var directory = new Argument<string>("data-dir") { Description = "The store's data directory" };
        var group = new Option<string?>("--group") { Description = "Only this consumer group" };
        var command = new Command("groups", "Committed offsets per consumer group and their lag against the HW and the LSO");
        command.Arguments.Add(directory);
        command.Options.Add(group);
        command.SetAction(result => Run(context, result.GetRequiredValue(directory), result.GetValue(group), result.GetValue(maxBatchBytes)));
        return command;
    }

    private static int Run(CliContext context, string path, string? group, int maxBatchBytes)
    {
        StoreInspection store = Inspect(context, path, maxBatchBytes);
        (List<CommittedOffset> committed, List<PendingOffset> pending) = store.ReplayConsumerOffsets();
        foreach (string problem in store.Problems)
        {
            context.Error.WriteLine("warning: " + problem);
        }

        committed = committed.Where(c => group is null || c.Group == group).ToList();
        pending = pending.Where(p => group is null || p.Group == group).ToList();
        if (committed.Count == 0 && pending.Count == 0)
        {
            context.Out.WriteLine(group is null ? "No committed consumer-group offsets." : $"Group '{group}' has no committed offsets.");
            return Program.ExitOk;
        }

        if (committed.Count > 0)
        {
            Table table = context.NewTable("Group", "Topic", "Partition", "Committed", "HW", "LSO", "Lag (HW)", "Lag (LSO)");
            foreach (CommittedOffset c in committed)
            {
                PartitionInspector? partition = store.Partition(c.Partition.Topic, c.Partition.Partition);
                if (partition is null || !partition.Exists)
                {
                    table.AddRow(new Text(c.Group), new Text(c.Partition.Topic), new Text(Num(c.Partition.Partition)), new Text(Num(c.Offset)),
                        new Text("-"), new Text("-"), new Text("-"), new Text("-"));
                    continue;
                }

                long hw = partition.LogEndOffset;
                long lso = partition.LastStableOffset;
                table.AddRow(
                    new Text(c.Group),
                    new Text(c.Partition.Topic),
                    new Text(Num(c.Partition.Partition)),
                    new Text(Num(c.Offset)),
                    new Text(Num(hw)),
                    new Text(Num(lso)),
                    new Text(Num(Math.Max(0, hw - c.Offset))),
                    new Text(Num(Math.Max(0, lso - c.Offset))));
            }

            context.Console.Write(table);
        }

        foreach (PendingOffset p in pending)
        {
            context.Out.WriteLine($"pending: group '{p.Group}' {p.Partition} offset {Num(p.Offset)} sent to the open transaction of producer {Num(p.ProducerId)} (not committed; it counts only if that transaction commits)");
        }

        return Program.ExitOk;
    }
}
