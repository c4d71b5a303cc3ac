using TxLog.Durability;
using TxLog.Records;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// TxLog under the comparison workloads: a store with the default settings (GroupCommit durability,
/// 1 GiB segments) and one single-partition topic. W1 and the W4 load go through a
/// <see cref="LogAppender"/> (records packed into 64 KiB batches, like a Kafka producer's batch.size),
/// W2 through <see cref="LogPartition.AppendAsync(Message, CancellationToken)"/> (one batch per record,
/// group commit), W4 through a <see cref="LogReader"/> (CRC checked per batch). W3 needs the
/// transactions of a later milestone and is skipped for now.
/// </summary>
public sealed class TxLogEngine : IEngine
{
    /// <inheritdoc/>
    public string Name => "txlog";

    /// <inheritdoc/>
    public ValueTask<IEngineStore> OpenAsync(string directory, Workload workload)
    {
        if (workload == Workload.Outbox)
        {
            throw new NotSupportedException("W3 needs TxLog transactions (a later issue).");
        }

        var store = LogStore.Open(directory, new LogStoreOptions { Durability = DurabilityMode.GroupCommit });
        if (!store.TopicExists("bench"))
        {
            store.CreateTopic("bench");
        }

        return new ValueTask<IEngineStore>(new Store(store));
    }

    private sealed class Store(LogStore store) : IEngineStore
    {
        private readonly LogPartition _partition = store.GetPartition("bench", 0);
        private LogAppender? _appender;

        public ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
        {
            _appender ??= _partition.CreateAppender();
            _appender.Append(new Message(payload));
            return default;
        }

        public ValueTask FlushAsync() => _appender?.FlushAsync() ?? default;

        public ValueTask<ICommitWriter> CreateCommitWriterAsync(int writerId) =>
            new(new CommitWriter(_partition));

        public ValueTask CreateAccountsAsync(int count, long balance) =>
            throw new NotSupportedException("W3 needs TxLog transactions (a later issue).");

        public ValueTask<IOutboxWriter> CreateOutboxWriterAsync(int writerId) =>
            throw new NotSupportedException("W3 needs TxLog transactions (a later issue).");

        public ValueTask ScanAsync(ScanTally tally)
        {
            using LogReader reader = _partition.OpenReader(_partition.LogStartOffset);
            while (reader.TryRead(out Record record))
            {
                tally.Add(record.Value);
            }

            return default;
        }

        public ValueTask DisposeAsync()
        {
            _appender?.Dispose();
            store.Dispose();
            return default;
        }
    }

    private sealed class CommitWriter(LogPartition partition) : ICommitWriter
    {
        public async ValueTask CommitOneAsync(ReadOnlyMemory<byte> payload) =>
            await partition.AppendAsync(new Message(payload)).ConfigureAwait(false);

        public ValueTask DisposeAsync() => default;
    }
}
