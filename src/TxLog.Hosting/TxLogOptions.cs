using TxLog.Mvcc;

namespace TxLog.Hosting;

/// <summary>
/// What the hosted store opens: bound with the Options pattern (<c>services.AddTxLog(o => ...)</c>,
/// or <c>services.Configure&lt;TxLogOptions&gt;(configuration.GetSection("TxLog"))</c> for the scalar settings).
/// </summary>
public sealed class TxLogOptions
{
    /// <summary>The data directory (created if missing). Required.</summary>
    public string Directory { get; set; } = "";

    /// <summary>
    /// Settings of the store (durability mode, segment sizes, retention, ...). When its
    /// <see cref="LogStoreOptions.LoggerFactory"/> is null, the host's <c>ILoggerFactory</c> is used.
    /// </summary>
    public LogStoreOptions Store { get; set; } = new();

    /// <summary>Topics created at start when they do not exist yet: name → partition count.</summary>
    public IDictionary<string, int> Topics { get; } = new Dictionary<string, int>(StringComparer.Ordinal);

    /// <summary>
    /// Settings of the MVCC transaction engine; when set, the engine is opened at start and
    /// <see cref="TransactionEngine"/> can be injected. Null (the default): no engine.
    /// </summary>
    public MvccOptions? TransactionEngine { get; set; }
}
