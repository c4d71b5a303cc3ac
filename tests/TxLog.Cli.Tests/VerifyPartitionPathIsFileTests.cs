namespace TxLog.Cli.Tests;

public sealed class VerifyPartitionPathIsFileTests : ScenarioTest
{
    [Test]
    public void Verify_fails_when_a_file_stands_where_a_partition_directory_belongs()
    {
        // The store cannot create the directory there: it refuses to open (IOException), so this is
        // not the harmless "missing directory, created empty at the next open".
        Directory.Delete(PartitionDir(Scenario.Topic, 1), recursive: true);
        File.WriteAllText(PartitionDir(Scenario.Topic, 1), "x");

        CliResult r = Cli.Run("verify", DataDir);
        Assume.That(() => LogStore.Open(DataDir, Scenario.Options(TimeProvider.System)).Dispose(), Throws.InstanceOf<IOException>(), "the store cannot open it");
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.Out, Does.Contain($"error: {Scenario.Topic}-1"), r.ToString());
    }
}
