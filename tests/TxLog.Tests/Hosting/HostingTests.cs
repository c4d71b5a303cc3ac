using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TxLog.Durability;
using TxLog.Hosting;
using TxLog.Mvcc;
using TxLog.Tests.Diagnostics;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Hosting;

public sealed class HostingTests
{
    private static IHost Build(string directory, Action<TxLogOptions>? more = null, ILoggerFactory? loggers = null)
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        if (loggers is not null)
        {
            builder.Services.AddSingleton(loggers);
        }

        builder.Services.AddTxLog(o =>
        {
            o.Directory = directory;
            o.Store.Durability = DurabilityMode.GroupCommit;
            o.Topics["orders"] = 2;
            more?.Invoke(o);
        });
        return builder.Build();
    }

    [Test]
    public async Task The_store_opens_at_start_is_injectable_and_closes_cleanly_at_stop()
    {
        using var dir = new TempDirectory();
        using IHost host = Build(dir.Path, o => o.TransactionEngine = new MvccOptions { CheckpointInterval = null });
        Assert.That(File.Exists(Path.Combine(dir.Path, "topics.meta")), Is.False, "nothing opened before start");

        await host.StartAsync();
        Assert.That(File.Exists(Path.Combine(dir.Path, "topics.meta")), Is.True, "opened at start");
        LogStore store = host.Services.GetRequiredService<LogStore>();
        Assert.That(store.PartitionCount("orders"), Is.EqualTo(2));
        AppendResult appended = store.GetPartition("orders", 1).Append(Msg("o-1"));
        TransactionEngine engine = host.Services.GetRequiredService<TransactionEngine>();
        TransactionalMap<int, int> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int32);
        MvccTransaction tx = engine.BeginTransaction();
        map.Put(tx, 7, 70);
        await tx.CommitAsync();

        await host.StopAsync();
        Assert.That(File.Exists(Path.Combine(dir.Path, LogStore.CleanShutdownFileName)), Is.True, "flushed and closed cleanly");
        Assert.That(File.Exists(Path.Combine(dir.Path, LogStore.LockFileName)) && CanLock(dir.Path), Is.True, "lock released");

        using LogStore reopened = LogStore.Open(dir.Path);
        Assert.That(reopened.Recovery.CleanShutdown, Is.True);
        Assert.That(Values(reopened.GetPartition("orders", 1), Consuming.IsolationLevel.ReadUncommitted), Is.EqualTo(new[] { "o-1" }));
        Assert.That(appended.BaseOffset, Is.Zero);
        TransactionEngine again = reopened.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
        TransactionalMap<int, int> m = again.OpenMap("m", Serializers.Int32, Serializers.Int32);
        Assert.That(m.Get(again.BeginTransaction(), 7), Is.EqualTo(70));
    }

    private static bool CanLock(string directory)
    {
        using LogStore probe = LogStore.Open(directory);
        return true;
    }

    [Test]
    public async Task The_host_logger_factory_receives_the_store_logs()
    {
        using var dir = new TempDirectory();
        var loggers = new ListLoggerFactory();
        using IHost host = Build(dir.Path, loggers: loggers);
        await host.StartAsync();
        await host.StopAsync();
        Assert.That(loggers.WithId(1004), Has.Count.EqualTo(1), "StoreOpened from the library");
        Assert.That(loggers.WithId(6002), Has.Count.EqualTo(1), "HostedStoreStopped from the hosted service");
    }

    [Test]
    public void A_missing_directory_fails_validation_with_a_clear_message()
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddTxLog();
        using IHost host = builder.Build();
        var e = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(e!.Message, Does.Contain("Directory is required"));
    }

    [Test]
    public async Task Stop_and_dispose_are_bounded_while_an_fsync_hangs()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        var loggers = new ListLoggerFactory();
        using IHost host = Build(dir.Path, o =>
        {
            o.Store.FileSystem = fs;
            o.Store.CloseTimeout = TimeSpan.FromSeconds(1);
        }, loggers);
        await host.StartAsync();
        LogStore store = host.Services.GetRequiredService<LogStore>();
        store.GetPartition("orders", 0).Append(Msg("x"));
        fs.BlockSyncs(); // the flush at stop hangs in fsync (the gate holds it up to 30 s)
        TxLogHostedService service = host.Services.GetRequiredService<TxLogHostedService>();

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
        {
            await service.StopAsync(timeout.Token);
        }

        Assert.That(stopwatch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)), "StopAsync honours the host's shutdown timeout");
        Assert.That(loggers.WithId(6003), Has.Count.EqualTo(1), "the timeout is reported");

        stopwatch.Restart();
        await service.DisposeAsync(); // the fsync still hangs: bounded by CloseTimeout, never throws
        Assert.That(stopwatch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)), "DisposeAsync is bounded by CloseTimeout");
        Assert.That(loggers.WithId(6004), Has.Count.EqualTo(1), "the unclean close is reported");
        Assert.That(File.Exists(Path.Combine(dir.Path, LogStore.CleanShutdownFileName)), Is.False, "not closed cleanly");
        fs.Release();

        // The background close goes on once the fsync returns: it finishes cleanly and frees the lock.
        LogStore? reopened = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (reopened is null && DateTime.UtcNow < deadline)
        {
            try
            {
                reopened = LogStore.Open(dir.Path);
            }
            catch (LogDirectoryLockedException)
            {
                await Task.Delay(50);
            }
        }

        Assert.That(reopened, Is.Not.Null, "the lock is released once the hung fsync returns");
        using (reopened)
        {
            Assert.That(reopened!.Recovery.CleanShutdown, Is.True, "the background close completed after all");
        }
    }

    [Test]
    public async Task A_normal_stop_after_a_flush_failure_still_closes_and_releases_the_lock()
    {
        using var dir = new TempDirectory();
        var fs = new Faults.FaultyFileSystem();
        var loggers = new ListLoggerFactory();
        using IHost host = Build(dir.Path, o => o.Store.FileSystem = fs, loggers);
        await host.StartAsync();
        LogStore store = host.Services.GetRequiredService<LogStore>();
        store.GetPartition("orders", 0).Append(Msg("x"));
        fs.FailSync(); // the close's fsync fails: the partition fails, the close is unclean
        await host.StopAsync();
        Assert.That(loggers.WithId(4002), Is.Not.Empty, "the failed partition is reported");
        using LogStore reopened = LogStore.Open(dir.Path); // would throw LogDirectoryLockedException if still open
        Assert.That(reopened.Recovery.CleanShutdown, Is.False);
    }

    [Test]
    public async Task A_hosted_service_that_depends_on_the_store_gets_it_and_the_store_is_closed_after_stop()
    {
        using var dir = new TempDirectory();
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddTxLog(o =>
        {
            o.Directory = dir.Path;
            o.Topics["orders"] = 1;
        });
        builder.Services.AddHostedService<Publisher>(); // built by the host before any hosted service starts
        using IHost host = builder.Build();
        await host.StartAsync();
        var publisher = host.Services.GetServices<IHostedService>().OfType<Publisher>().Single();
        Assert.That(publisher.Offset, Is.Zero, "the publisher appended through the injected store");
        await host.StopAsync();
        Assert.Throws<InvalidOperationException>(() => host.Services.GetRequiredService<TxLogHostedService>().Store.ToString());
    }

    private sealed class Publisher(LogStore store) : IHostedService
    {
        public long Offset { get; private set; } = -1;

        public Task StartAsync(CancellationToken cancellationToken)
        {
            Offset = store.GetPartition("orders", 0).Append(Msg("o")).BaseOffset;
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    [Test]
    public void Calling_AddTxLog_twice_registers_one_hosted_service()
    {
        var services = new ServiceCollection();
        services.AddTxLog(o => o.Directory = "a");
        services.AddTxLog(o => o.Topics["t"] = 1);
        Assert.That(services.Count(d => d.ServiceType == typeof(IHostedService)), Is.EqualTo(1));
        using ServiceProvider provider = services.BuildServiceProvider();
        TxLogOptions options = provider.GetRequiredService<IOptions<TxLogOptions>>().Value;
        Assert.That(options.Directory, Is.EqualTo("a"));
        Assert.That(options.Topics["t"], Is.EqualTo(1));
    }

    [Test]
    public async Task Stop_while_the_store_is_still_opening_returns_in_time_and_the_open_closes_itself()
    {
        using var dir = new TempDirectory();
        var fs = new BlockingListFileSystem();
        var loggers = new ListLoggerFactory();
        using IHost host = Build(dir.Path, o => o.Store.FileSystem = fs, loggers);
        fs.Block();
        Task start = host.StartAsync(); // recovery blocks in the file system
        Assert.That(fs.WaitUntilBlocked(TimeSpan.FromSeconds(20)), Is.True, "the open is in progress");

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
        {
            await host.Services.GetRequiredService<TxLogHostedService>().StopAsync(timeout.Token);
        }

        Assert.That(stopwatch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)), "StopAsync did not wait for the open");
        Assert.That(loggers.WithId(6003), Has.Count.EqualTo(1));

        fs.Release();
        Assert.ThrowsAsync<InvalidOperationException>(() => start, "the open noticed the stop and closed what it opened");
        using LogStore reopened = LogStore.Open(dir.Path); // the lock is free
        Assert.That(reopened.Recovery.CleanShutdown, Is.True);
    }

    [Test]
    public async Task Stop_with_an_already_cancelled_token_still_starts_the_close()
    {
        // Regression: a cancelled token made the gate wait fail at once, so the store was never closed.
        using var dir = new TempDirectory();
        using IHost host = Build(dir.Path);
        await host.StartAsync();
        TxLogHostedService service = host.Services.GetRequiredService<TxLogHostedService>();
        await service.StopAsync(new CancellationToken(canceled: true));
        await service.DisposeAsync(); // waits (bounded) for the close that StopAsync started
        Assert.That(File.Exists(Path.Combine(dir.Path, LogStore.CleanShutdownFileName)), Is.True, "closed cleanly");
    }

    [Test]
    public async Task A_close_timeout_the_store_cannot_wait_for_never_leaves_the_store_open_after_stop()
    {
        // Regression: a CloseTimeout above int.MaxValue ms (about 24.8 days) passed validation, but the
        // close's waits threw ArgumentOutOfRangeException before anything was flushed: the host stopped
        // with the store still open and its lock held until the process ended.
        using var dir = new TempDirectory();
        using IHost host = Build(dir.Path, o => o.Store.CloseTimeout = TimeSpan.FromDays(30));
        bool started = false;
        try
        {
            await host.StartAsync();
            started = true;
        }
        catch (ArgumentOutOfRangeException e)
        {
            Assert.That(e.ParamName, Is.EqualTo(nameof(LogStoreOptions.CloseTimeout)), "rejected up front, by name");
        }

        await host.StopAsync();
        using LogStore reopened = LogStore.Open(dir.Path); // throws LogDirectoryLockedException while still open
        if (started)
        {
            Assert.That(reopened.Recovery.CleanShutdown, Is.True, "flushed and closed cleanly at stop");
        }
    }

    /// <summary>Blocks directory listings (done at open) while armed.</summary>
    private sealed class BlockingListFileSystem : DelegatingFileSystem
    {
        private readonly ManualResetEventSlim _released = new(true);
        private readonly ManualResetEventSlim _blocked = new(false);

        public void Block() => _released.Reset();

        public void Release() => _released.Set();

        public bool WaitUntilBlocked(TimeSpan timeout) => _blocked.Wait(timeout);

        public override string[] GetFiles(string directory, string searchPattern)
        {
            if (!_released.IsSet)
            {
                _blocked.Set();
                _released.Wait(TimeSpan.FromSeconds(30));
            }

            return base.GetFiles(directory, searchPattern);
        }
    }
}
