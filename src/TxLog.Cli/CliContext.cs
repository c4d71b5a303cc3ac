using Spectre.Console;

namespace TxLog.Cli;

/// <summary>
/// Where a command writes, reads and takes the time from. The tool's <c>Main</c> builds one on the
/// process console; tests build one on string writers and a fake clock.
/// </summary>
internal sealed class CliContext
{
    /// <summary>Width given to tables when the output is not a terminal (so rows do not wrap).</summary>
    public const int FixedWidth = 240;

    public CliContext(TextWriter output, TextWriter error, TextReader input, TimeProvider time, bool interactive, bool inputIsTerminal = false)
    {
        InputIsTerminal = inputIsTerminal;
        Out = output;
        Error = error;
        In = input;
        Time = time;
        Interactive = interactive;
        Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
        });
        if (!interactive)
        {
            Console.Profile.Width = FixedWidth;
        }
    }

    /// <summary>Standard output (plain text lines).</summary>
    public TextWriter Out { get; }

    /// <summary>Standard error: usage errors, warnings about the store's state.</summary>
    public TextWriter Error { get; }

    /// <summary>Standard input (the confirmation of <c>abort</c>).</summary>
    public TextReader In { get; }

    /// <summary>True when stdin is a terminal (the user's Enter ends the prompt's line).</summary>
    public bool InputIsTerminal { get; }

    /// <summary>The clock (ages of open transactions; the store's clock in <c>abort</c>).</summary>
    public TimeProvider Time { get; }

    /// <summary>True when stdout is a terminal: colours, progress bars, rounded table borders.</summary>
    public bool Interactive { get; }

    /// <summary>Spectre.Console on <see cref="Out"/> (tables, progress).</summary>
    public IAnsiConsole Console { get; }

    /// <summary>A table in the style of this output (ASCII borders when not a terminal).</summary>
    public Table NewTable(params string[] columns)
    {
        var table = new Table { Border = Interactive ? TableBorder.Rounded : TableBorder.Ascii };
        foreach (string column in columns)
        {
            table.AddColumn(new TableColumn(new Text(column)));
        }

        return table;
    }
}
