namespace TxLog.Cli.Tests;

public sealed class UsageTests
{
    [TestCase("")]
    [TestCase("frobnicate")]
    [TestCase("verify")]
    [TestCase("abort /tmp")]
    [TestCase("dump --format octal /tmp")]
    [TestCase("transactions /tmp --hanging-minutes soon")]
    [TestCase("topics /tmp --no-such-option")]
    [TestCase("verify /tmp --max-batch-bytes 10")]
    public void Usage_errors_exit_with_2(string commandLine)
    {
        CliResult r = Cli.Run(commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.Error, Does.Contain("error:"));
    }

    [TestCase("verify")]
    [TestCase("topics")]
    [TestCase("transactions")]
    [TestCase("groups")]
    [TestCase("dump")]
    public void A_missing_directory_exits_with_2(string command)
    {
        CliResult r = Cli.Run(command, Path.Combine(Path.GetTempPath(), "txlog-cli-tests", "does-not-exist-" + Guid.NewGuid().ToString("N")));
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
    }

    [Test]
    public void A_directory_that_is_not_a_store_exits_with_2()
    {
        using var dir = new TempDirectory();
        CliResult r = Cli.Run("verify", dir.Path);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.Error, Does.Contain("is not a TxLog data directory"));
        Assert.That(Directory.GetFileSystemEntries(dir.Path), Is.Empty, "nothing was created");
    }

    [Test]
    public void The_public_Run_writes_to_the_given_writers()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.That(Program.Run(["topics", "--internal"], stdout, stderr), Is.EqualTo(2));
        Assert.That(stderr.ToString(), Does.Contain("error:"));
        Assert.That(Program.Run(["--version"], stdout, stderr), Is.EqualTo(0));
        Assert.That(stdout.ToString(), Does.Match(@"\d+\.\d+\.\d+"));
    }

    [Test]
    public void Help_exits_with_0_and_lists_the_commands()
    {
        CliResult r = Cli.Run("--help");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        Assert.That(r.Out, Does.Contain("dump").And.Contain("verify").And.Contain("topics").And.Contain("transactions").And.Contain("groups").And.Contain("abort"));
    }
}
