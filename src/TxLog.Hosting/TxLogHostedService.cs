using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TxLog.Mvcc;

namespace TxLog.Hosting;

/// <summary>
/// Opens the store when the host starts (recovery included; or earlier, when a service that depends on
/// <see cref="LogStore"/> is resolved first) and, when it stops, flushes and closes
/// it within the host's shutdown timeout. If the timeout runs out first, <see cref="StopAsync"/>
/// returns and the close finishes in the background; should the process end before that, the next
/// open recovers (an fsync not waited for is never reported to a caller as durable).
/// </summary>
public sealed class TxLogHostedService : IHostedService, IAsyncDisposable, IDisposable
{
    private readonly TxLogOptions _options;
    private readonly ILogger _logger;
    private readonly ILoggerFactory? _loggerFactory;
    private LogStore? _store;
    private TransactionEngine? _engine;
    private readonly SemaphoreSlim _openGate = new(1, 1); // one open (or close hand-over) at a time
    private volatile bool _stopped;                       // set first by stop/dispose; an open in progress then closes what it opened
    private Task? _closing;                      // the close StopAsync started

    /// <summary>Created by dependency injection.</summary>
    /// <param name="options">The configured <see cref="TxLogOptions"/>.</param>
    /// <param name="loggerFactory">The host's logger factory, if logging is registered.</param>
    public TxLogHostedService(IOptions<TxLogOptions> options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _loggerFactory = loggerFactory;
        _logger = (ILogger?)loggerFactory?.CreateLogger("TxLog.Hosting") ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    }

    /// <summary>
    /// The open store. It opens at host start, or earlier when something resolves it first (the host
    /// builds every hosted service, with its dependencies, before it starts any of them).
    /// </summary>
    /// <exception cref="InvalidOperationException">The host has stopped.</exception>
    public LogStore Store => _store ?? Open();

    /// <summary>The MVCC engine (when <see cref="TxLogOptions.TransactionEngine"/> is set).</summary>
    /// <exception cref="InvalidOperationException">No engine was configured, or the host has stopped.</exception>
    public TransactionEngine TransactionEngine
    {
        get
        {
            _ = Store;
            return _engine ?? throw new InvalidOperationException("No transaction engine is configured: set TxLogOptions.TransactionEngine in AddTxLog.");
        }
    }

    /// <summary>Opens the store (if not yet open), creates the configured topics and opens the engine if configured.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Recovery reads files: run it off the host's startup thread.
        return _store is not null ? Task.CompletedTask : Task.Run(Open, cancellationToken);
    }

    private LogStore Open()
    {
        _openGate.Wait();
        try
        {
            if (_store is { } open)
            {
                return open;
            }

            if (_stopped)
            {
                throw new InvalidOperationException("The TxLog store is closed: the host has stopped.");
            }

            if (string.IsNullOrWhiteSpace(_options.Directory))
            {
                throw new OptionsValidationException(nameof(TxLogOptions), typeof(TxLogOptions), ["TxLogOptions.Directory is required."]);
            }

            LogStoreOptions storeOptions = _options.Store;
            storeOptions.LoggerFactory ??= _loggerFactory;
            LogStore store = LogStore.Open(_options.Directory, storeOptions);
            try
            {
                foreach (KeyValuePair<string, int> topic in _options.Topics)
                {
                    if (!store.TopicExists(topic.Key))
                    {
                        store.CreateTopic(topic.Key, topic.Value);
                    }
                }

                if (_options.TransactionEngine is { } mvcc)
                {
                    _engine = store.OpenTransactionEngine(mvcc);
                }
            }
            catch
            {
                store.Dispose();
                throw;
            }

            if (_stopped)
            {
                // The host stopped while recovery ran (StopAsync gave up waiting for it): do not leave it open.
                store.Dispose();
                throw new InvalidOperationException("The TxLog store is closed: the host stopped while it was opening.");
            }

            _logger.LogInformation(new EventId(6001, "HostedStoreStarted"), "TxLog store {Directory} is open", store.Directory);
            Volatile.Write(ref _store, store);
            return store;
        }
        finally
        {
            _openGate.Release();
        }
    }

    /// <summary>Flushes every partition and closes the store, waiting at most until <paramref name="cancellationToken"/> fires.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopped = true;

        // An open still running recovery holds the gate; the host's shutdown timeout bounds the wait. A
        // free gate is taken at once even when the token is already cancelled (the host often leaves
        // the last hosted service no time at all): the close is then started and runs on.
        if (!_openGate.Wait(0))
        {
            try
            {
                await _openGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                _logger.LogWarning(new EventId(6003, "HostedStoreStopTimedOut"),
                    "The host's shutdown timeout ran out while TxLog store {Directory} was still opening; it is closed as soon as the open finishes", _options.Directory);
                return;
            }
        }

        LogStore? store;
        Task closing;
        try
        {
            store = Interlocked.Exchange(ref _store, null);
            if (store is null)
            {
                return;
            }

            // LogStore.Dispose flushes every partition and closes (bounded by LogStoreOptions.CloseTimeout).
            // On a pool thread: it blocks in fsyncs, and a hung fsync must not keep StopAsync from
            // honouring the host's shutdown timeout. Published under the gate, so DisposeAsync sees it.
            closing = Task.Run(store.Dispose, CancellationToken.None);
            _closing = closing;
        }
        finally
        {
            _openGate.Release();
        }

        try
        {
            await closing.WaitAsync(cancellationToken).ConfigureAwait(false);
            _logger.LogInformation(new EventId(6002, "HostedStoreStopped"), "TxLog store {Directory} is closed", store.Directory);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _logger.LogWarning(new EventId(6003, "HostedStoreStopTimedOut"),
                "The host's shutdown timeout ran out while TxLog store {Directory} was closing; it goes on closing in the background (if the process ends first, the next open recovers)", store.Directory);
        }
        catch (Exception e)
        {
            // Closed, but not cleanly (a failed partition, or CloseTimeout ran out): the next open recovers.
            LogCloseFailed(e, store.Directory);
        }
    }

    private void LogCloseFailed(Exception e, string directory) =>
        _logger.LogError(new EventId(6004, "HostedStoreCloseFailed"), e, "Closing TxLog store {Directory} failed; the next open recovers it", directory);

    /// <summary>
    /// Closes the store if the host never stopped it; after a stop that timed out, waits for the
    /// background close at most <see cref="LogStoreOptions.CloseTimeout"/> (the store's own bound).
    /// Never throws: failures are logged (event 6004).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _stopped = true;
        // Clamped to what the waits accept (an invalid CloseTimeout already failed the open; never throw here).
        TimeSpan bound = TimeSpan.FromMilliseconds(Math.Clamp(_options.Store.CloseTimeout.TotalMilliseconds + 1000, 0, int.MaxValue));
        LogStore? open = null;
        Task? closing = null;
        if (await _openGate.WaitAsync(bound).ConfigureAwait(false))
        {
            try
            {
                open = Interlocked.Exchange(ref _store, null);
                closing = open is { } store ? Task.Run(store.Dispose) : _closing;
            }
            finally
            {
                _openGate.Release();
            }
        }

        if (closing is null)
        {
            return;
        }

        try
        {
            await closing.WaitAsync(bound).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            LogCloseFailed(e, _options.Directory);
        }
    }

    /// <summary>Synchronous <see cref="DisposeAsync"/> (for containers disposed synchronously).</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
