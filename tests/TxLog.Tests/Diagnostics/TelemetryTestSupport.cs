using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using TxLog.Diagnostics;

namespace TxLog.Tests.Diagnostics;

/// <summary>One measurement seen by <see cref="MetricsRecorder"/>.</summary>
internal sealed record Measured(string Instrument, double Value, IReadOnlyDictionary<string, object?> Tags);

/// <summary>Listens to the instruments of ONE store's meter (by its directory tag) and keeps every measurement.</summary>
internal sealed class MetricsRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<Measured> _seen = new();

    public MetricsRecorder(string storeDirectory)
    {
        string full = Path.GetFullPath(storeDirectory);
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == TxLogDiagnostics.MeterName && instrument.Meter.Tags is { } tags
                && tags.Any(t => t.Key == TxLogDiagnostics.StoreTag && Equals(t.Value, full)))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, t, _) => Add(i, v, t));
        _listener.SetMeasurementEventCallback<int>((i, v, t, _) => Add(i, v, t));
        _listener.SetMeasurementEventCallback<double>((i, v, t, _) => Add(i, v, t));
        _listener.Start();
    }

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var dict = new Dictionary<string, object?>();
        foreach (KeyValuePair<string, object?> tag in tags)
        {
            dict[tag.Key] = tag.Value;
        }

        _seen.Enqueue(new Measured(instrument.Name, value, dict));
    }

    /// <summary>Polls the observable gauges once; returns what they reported.</summary>
    public List<Measured> Observe(string instrument)
    {
        int before = _seen.Count;
        _listener.RecordObservableInstruments();
        return _seen.Skip(before).Where(m => m.Instrument == instrument).ToList();
    }

    public List<Measured> Of(string instrument) => _seen.Where(m => m.Instrument == instrument).ToList();

    public double Sum(string instrument) => Of(instrument).Sum(m => m.Value);

    public double Sum(string instrument, string tag, object value) => Of(instrument).Where(m => Equals(m.Tags.GetValueOrDefault(tag), value)).Sum(m => m.Value);

    public void Dispose() => _listener.Dispose();
}

/// <summary>Keeps every span of the "TxLog" source that belongs to one store.</summary>
internal sealed class SpanRecorder : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<Activity> _spans = new();

    public SpanRecorder(string storeDirectory)
    {
        string full = Path.GetFullPath(storeDirectory);
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == TxLogDiagnostics.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (Equals(activity.GetTagItem(TxLogDiagnostics.StoreTag), full))
                {
                    _spans.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public List<Activity> Named(string name) => _spans.Where(a => a.OperationName == name).ToList();

    public void Dispose() => _listener.Dispose();
}

/// <summary>One log entry with its structured fields.</summary>
internal sealed record Logged(string Category, LogLevel Level, EventId EventId, string Message, IReadOnlyDictionary<string, object?> Fields, Exception? Exception);

/// <summary>An <see cref="ILoggerFactory"/> that keeps every entry in memory.</summary>
internal sealed class ListLoggerFactory : ILoggerFactory
{
    private readonly ConcurrentQueue<Logged> _entries = new();

    public IReadOnlyList<Logged> Entries => _entries.ToList();

    private readonly ConcurrentDictionary<int, TaskCompletionSource<Logged>> _waiters = new();

    public List<Logged> WithId(int eventId) => _entries.Where(e => e.EventId.Id == eventId).ToList();

    /// <summary>Completes with the first entry of <paramref name="eventId"/> (at once if one was logged already).</summary>
    public Task<Logged> WhenLogged(int eventId)
    {
        TaskCompletionSource<Logged> waiter = _waiters.GetOrAdd(eventId, static _ => new TaskCompletionSource<Logged>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (WithId(eventId) is [Logged first, ..])
        {
            waiter.TrySetResult(first); // logged before anyone waited
        }

        return waiter.Task;
    }

    public ILogger CreateLogger(string categoryName) => new ListLogger(this, categoryName);

    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

    public void Dispose()
    {
    }

    private sealed class ListLogger(ListLoggerFactory owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var fields = new Dictionary<string, object?>();
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                foreach (KeyValuePair<string, object?> pair in pairs)
                {
                    fields[pair.Key] = pair.Value;
                }
            }

            var entry = new Logged(category, logLevel, eventId, formatter(state, exception), fields, exception);
            owner._entries.Enqueue(entry);
            if (owner._waiters.TryGetValue(eventId.Id, out TaskCompletionSource<Logged>? waiter))
            {
                waiter.TrySetResult(entry);
            }
        }
    }
}
