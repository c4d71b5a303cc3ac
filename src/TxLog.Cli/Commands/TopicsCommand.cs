using System.CommandLine;
using Spectre.Console;
using TxLog.Inspection;
using static TxLog.Cli.Commands.CliSupport;

namespace TxLog.Cli.Commands;

/// <summary>
/// <c>txlog topics &lt;data-dir&gt;</c>: a table of the topics and, per partition, its log start
/// offset, log end offset (as recovery computes it: the end of the last whole batch), segment count
/// and size. Internal topics only with <c>--internal</c>. Read-only.
/// </summary>
internal static class TopicsCommand
{
    public static Command Create(CliContext context, Option<int> maxBatchBytes)
    {
        var directory = new Argument<string>("data-dir") { Description = "The store's data directory" };
        var includeInternal = new Option<bool>("--internal") { Description = "Include the internal topics (__transaction_state, __consumer_offsets, __mvcc_redo)" };
        var command = new Command("topics", "List topics and partitions: log start and end offsets, segments, size");
        command.Arguments.Add(directory);
        command.Options.Add(includeInternal);
        command.SetAction(result => Run(context, result.GetRequiredValue(directory), result.GetValue(includeInternal), result.GetValue(maxBatchBytes)));
        return command;
    }

    private static int Run(CliContext context, string path, bool includeInternal, int maxBatchBytes)
    {
        StoreInspection store = Inspect(context, path, maxBatchBytes);
        Table table = context.NewTable("Topic", "Partition", "Log start", "Log end", "Segments", "Size (bytes)");
        int topics = 0;
        var notes = new List<string>();
        foreach (TopicDescription topic in store.Topics)
        {
            if (!includeInternal && LogStore.IsInternalTopic(topic.Name))
            {
                continue;
            }

            topics++;
            for (int p = 0; p < topic.Partitions; p++)
            {
                PartitionInspector partition = store.Partition(topic.Name, p)!;
                if (!partition.Exists)
                {
                    table.AddRow(new Text(topic.Name), new Text(Num(p)), new Text("missing"), new Text("-"), new Text("0"), new Text("0"));
                    continue;
                }

                table.AddRow(
                    new Text(topic.Name),
                    new Text(Num(p)),
                    new Text(Num(partition.LogStartOffset)),
                    new Text(Num(partition.LogEndOffset)),
                    new Text(Num(partition.Segments.Count)),
                    new Text(Num(partition.SizeInBytes)));
                notes.AddRange(partition.Notes);
            }
        }

        if (topics == 0)
        {
            context.Out.WriteLine(includeInternal ? "No topics." : "No topics (use --internal to list the internal ones).");
            return Program.ExitOk;
        }

        context.Console.Write(table);
        foreach (string note in notes)
        {
            context.Out.WriteLine("note: " + note.Replace(store.Directory.Path + Path.DirectorySeparatorChar, "", StringComparison.Ordinal));
        }

        return Program.ExitOk;
    }
}
