namespace TxLog.Cli;

/// <summary>Entry point of the <c>txlog</c> tool.</summary>
public static class Program
{
    /// <summary>Runs the tool.</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <returns>The process exit code.</returns>
    public static int Main(string[] args) => args.Length == 0 ? 1 : 0;
}
