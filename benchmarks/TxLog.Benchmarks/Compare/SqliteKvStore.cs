using Microsoft.Data.Sqlite;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// SQLite under <c>kv-put</c>: the table <c>kv(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID</c> in a WAL
/// database; every connection sets <c>PRAGMA synchronous=FULL</c> (<c>kv_put_full</c>, each commit fsyncs the
/// WAL; compared with TxLog Instant) or <c>NORMAL</c> (<c>kv_put_normal</c>, the WAL is fsynced only at
/// checkpoints; compared with TxLog Periodic), and <c>PRAGMA busy_timeout=30000</c>; no pooling, everything else
/// at SQLite's defaults. The load is one transaction of prepared INSERTs; each operation is one autocommit
/// <c>INSERT INTO kv(k,v) VALUES($k,$v) ON CONFLICT(k) DO UPDATE SET v=excluded.v</c> on the writer's own
/// connection (prepared once), serialized by SQLite's writer lock and busy handler, as in W2.
/// </summary>
internal sealed class SqliteKvStore : IKvStore
{
    private const string Upsert = "INSERT INTO kv(k, v) VALUES ($k, $v) ON CONFLICT(k) DO UPDATE SET v = excluded.v;";

    private readonly string _connectionString;
    private readonly string _synchronous;
    private readonly SqliteConnection _main;

    public SqliteKvStore(string path, string synchronous)
    {
        _synchronous = synchronous;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
        _main = Connect();
        try
        {
            Execute(_main, "PRAGMA journal_mode=WAL;");
            Execute(_main, "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;");
        }
        catch
        {
            _main.Dispose();
            throw;
        }
    }

    /// <summary>The variants: JSON workload name and <c>synchronous</c> setting.</summary>
    public static readonly IReadOnlyList<(string Variant, string Synchronous)> Variants =
    [
        ("kv_put_full", "FULL"),
        ("kv_put_normal", "NORMAL"),
    ];

    public ValueTask LoadAsync(long count)
    {
        Execute(_main, "BEGIN;");
        using (SqliteCommand insert = _main.CreateCommand())
        {
            insert.CommandText = "INSERT INTO kv(k, v) VALUES ($k, $v);";
            SqliteParameter k = insert.Parameters.Add("$k", SqliteType.Blob);
            SqliteParameter v = insert.Parameters.Add("$v", SqliteType.Blob);
            insert.Prepare();
            byte[] key = new byte[KvData.KeySize];
            byte[] value = new byte[KvData.ValueSize];
            for (long i = 0; i < count; i++)
            {
                KvData.FillKey(key, i);
                KvData.FillLoadValue(value, i);
                k.Value = key;
                v.Value = value;
                insert.ExecuteNonQuery();
            }
        }

        Execute(_main, "COMMIT;");
        return ValueTask.CompletedTask;
    }

    public ValueTask<IKvWriter> CreateWriterAsync(int writerId) => new(new Writer(Connect()));

    public ValueTask DisposeAsync()
    {
        _main.Dispose();
        return ValueTask.CompletedTask;
    }

    private SqliteConnection Connect()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        try
        {
            Execute(connection, $"PRAGMA synchronous={_synchronous}; PRAGMA busy_timeout=30000;");
        }
        catch
        {
            connection.Dispose();
            throw;
        }

        return connection;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>One connection, one prepared autocommit upsert per operation.</summary>
    private sealed class Writer : IKvWriter
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _upsert;
        private readonly SqliteParameter _key;
        private readonly SqliteParameter _value;

        public Writer(SqliteConnection connection)
        {
            _connection = connection;
            _upsert = connection.CreateCommand();
            _upsert.CommandText = Upsert;
            _key = _upsert.Parameters.Add("$k", SqliteType.Blob);
            _value = _upsert.Parameters.Add("$v", SqliteType.Blob);
            _upsert.Prepare();
        }

        public ValueTask PutAsync(byte[] key, byte[] value)
        {
            // The runner's buffers are whole arrays; SQLite copies them while binding.
            _key.Value = key;
            _value.Value = value;
            _upsert.ExecuteNonQuery();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            _upsert.Dispose();
            _connection.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
