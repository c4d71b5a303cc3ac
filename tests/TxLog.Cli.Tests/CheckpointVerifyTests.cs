using TxLog.Durability;
using TxLog.Mvcc;

namespace TxLog.Cli.Tests;

public sealed class CheckpointVerifyTests
{
    [Test]
    public async Task MVCC_checkpoints_are_verified_and_a_corrupted_one_fails()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None }))
        {
            TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
            TransactionalMap<int, int> map = engine.OpenMap("balances", Serializers.Int32, Serializers.Int32);
            for (int i = 0; i < 3; i++)
            {
                using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
                map.Put(tx, i, i * 100);
                tx.Commit();
            }

            await engine.CheckpointAsync();
            using MvccTransaction after = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            map.Put(after, 7, 700);
            after.Commit();
        }

        string[] checkpoints = Directory.GetFiles(Path.Combine(dir.Path, "mvcc"), "*.ckpt");
        Assert.That(checkpoints, Has.Length.EqualTo(1));
        CliResult good = Cli.Run("verify", dir.Path);
        Assert.That(good.ExitCode, Is.EqualTo(0), good.ToString());
        Assert.That(good.Out, Does.Contain("1 checkpoints"));

        RawLog.FlipByte(checkpoints[0], 40);
        CliResult bad = Cli.Run("verify", dir.Path);
        Assert.That(bad.ExitCode, Is.EqualTo(1), bad.ToString());
        string relative = Path.GetRelativePath(dir.Path, checkpoints[0]);
        Assert.That(bad.Out, Does.Contain($"error: {relative}, position {new FileInfo(checkpoints[0]).Length - 4}: checksum mismatch"));
    }
}
