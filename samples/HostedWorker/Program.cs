// A generic-host worker that embeds TxLog: the store opens when the host starts and closes when it
// stops; a background service publishes orders transactionally; the TxLog metrics are printed every
// second by a MeterListener (the same instruments OpenTelemetry or `dotnet-counters monitor
// --counters TxLog` would read). Usage: dotnet run --project samples/HostedWorker [-- <data-dir> [seconds]]
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TxLog;
using TxLog.Diagnostics;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;

string directory = Path.GetFullPath(args.Length > 0 ? args[0] : "txlog-hosted");
int seconds = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;

HostApplicationBuilder builder = Host.CreateApplicationBuilder();
builder.Logging.SetMinimumLevel(LogLevel.Information);
builder.Services.AddTxLog(options =>
{
    options.Directory = directory;
    options.Store.Durability = DurabilityMode.GroupCommit;
    options.Topics["orders"] = 3;
});
builder.Services.AddHostedService<OrderPublisher>();
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));

using var metrics = new MetricsPrinter();
using IHost host = builder.Build();
await host.StartAsync();
// Run for the given time, or until Ctrl+C / SIGTERM (the host's console lifetime turns them into StopApplication).
IHostApplicationLifetime lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
try
{
    await Task.Delay(TimeSpan.FromSeconds(seconds), lifetime.ApplicationStopping);
}
catch (OperationCanceledException)
{
}

await host.StopAsync();
metrics.Print("final");

Console.WriteLine($"Data directory: {directory}");
Console.WriteLine($"Check it:       dotnet run --project src/TxLog.Cli -- verify {directory}");
Console.WriteLine($"Its topics:     dotnet run --project src/TxLog.Cli -- topics {directory}");

/// <summary>Publishes one order (three events over three partitions) per transaction until the host stops.</summary>
internal sealed class OrderPublisher(LogStore store, ILogger<OrderPublisher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "hosted-order-publisher" });
        await producer.InitTransactionsAsync(stoppingToken);
        int orders = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            producer.BeginTransaction();
            string id = $"order-{Environment.ProcessId}-{orders}";
            for (int p = 0; p < 3; p++)
            {
                await producer.ProduceAsync(new TopicPartition("orders", p), new Message(System.Text.Encoding.UTF8.GetBytes(id), System.Text.Encoding.UTF8.GetBytes($"step {p}")), CancellationToken.None);
            }

            await producer.CommitTransactionAsync(CancellationToken.None);
            orders++;
        }

        logger.LogInformation("Published {Orders} orders", orders);
    }
}

/// <summary>Aggregates the TxLog instruments and prints them once a second.</summary>
internal sealed class MetricsPrinter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Dictionary<string, (double Sum, long Count)> _totals = new();
    private readonly Timer _timer;

    public MetricsPrinter()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == TxLogDiagnostics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, _, _) => Add(i.Name, v));
        _listener.SetMeasurementEventCallback<int>((i, v, _, _) => Add(i.Name, v));
        _listener.SetMeasurementEventCallback<double>((i, v, _, _) => Add(i.Name, v));
        _listener.Start();
        _timer = new Timer(_ => Print("metrics"), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    private void Add(string name, double value)
    {
        lock (_totals)
        {
            (double sum, long count) = _totals.GetValueOrDefault(name);
            _totals[name] = (sum + value, count + 1);
        }
    }

    public void Print(string title)
    {
        lock (_totals)
        {
            (double commitMs, long commits) = _totals.GetValueOrDefault("txlog.commit.duration");
            (double fsyncs, _) = _totals.GetValueOrDefault("txlog.fsync.count");
            (double records, _) = _totals.GetValueOrDefault("txlog.records.appended");
            (double committed, _) = _totals.GetValueOrDefault("txlog.transactions.committed");
            Console.WriteLine($"[{title}] committed {committed:N0} transactions, {records:N0} records appended, {fsyncs:N0} fsyncs, mean commit latency {(commits == 0 ? 0 : commitMs / commits):F2} ms");
        }
    }

    public void Dispose()
    {
        _timer.Dispose();
        _listener.Dispose();
    }
}
