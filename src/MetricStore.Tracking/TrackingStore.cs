using MetricStore.Core;
using Microsoft.Data.Sqlite;

namespace MetricStore.Tracking;

/// <summary>
/// The metadata store: experiments, runs, params, tags, notes and captured source, in one SQLite
/// database (WAL mode) inside the data directory. Thread-safe: every operation takes a pooled
/// connection of its own, and every write runs in one IMMEDIATE transaction, so a refused request
/// changes nothing.
/// </summary>
public sealed partial class TrackingStore : IDisposable
{
    private readonly string _connectionString;
    private readonly TimeProvider _clock;

    private TrackingStore(TrackingStoreOptions options, string connectionString)
    {
        Options = options;
        _connectionString = connectionString;
        _clock = options.Clock;
    }

    public TrackingStoreOptions Options { get; }

    /// <summary>
    /// Opens (creating when missing) the store in <see cref="TrackingStoreOptions.DataDirectory"/>
    /// and applies pending schema migrations.
    /// </summary>
    /// <exception cref="IOException">The data directory cannot be created, read or written.</exception>
    public static TrackingStore Open(TrackingStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            Directory.CreateDirectory(options.DataDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot create the data directory '{options.DataDirectory}': {e.Message}", e);
        }

        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = options.DatabasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            ForeignKeys = true,
            DefaultTimeout = 30,
        }.ToString();

        var store = new TrackingStore(options, connectionString);
        try
        {
            using var connection = store.OpenConnection();
            using (var wal = connection.CreateCommand())
            {
                // WAL survives in the file; readers never block the writer and vice versa.
                wal.CommandText = "PRAGMA journal_mode = WAL";
                var mode = wal.ExecuteScalar() as string;
                if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                {
                    throw new IOException($"the metadata database '{options.DatabasePath}' could not switch to WAL mode (it reports '{mode}')");
                }
            }

            Schema.Migrate(connection, options.Clock);
        }
        catch (SqliteException e)
        {
            store.Dispose();
            throw new IOException($"cannot open the metadata database '{options.DatabasePath}': {e.Message}", e);
        }

        return store;
    }

    /// <summary>The schema version of the open database.</summary>
    public int SchemaVersion
    {
        get
        {
            using var connection = OpenConnection();
            return Schema.CurrentVersion(connection);
        }
    }

    /// <summary>Cheap liveness probe for health checks: one read on a pooled connection.</summary>
    public bool Ping()
    {
        using var connection = OpenConnection();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) == 1;
    }

    public void Dispose()
    {
        // Pooled connections hold the file open; release them so the directory can be removed.
        using var connection = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(connection);
    }

    private long NowMs() => _clock.GetUtcNow().ToUnixTimeMilliseconds();

    private SqliteConnection OpenConnection()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var pragma = connection.CreateCommand();
        // FULL: an acknowledged metadata change survives power loss, not only a process crash.
        pragma.CommandText = "PRAGMA synchronous = FULL";
        pragma.ExecuteNonQuery();
        return connection;
    }

    private T Read<T>(Func<SqliteConnection, T> read)
    {
        using var connection = OpenConnection();
        return read(connection);
    }

    /// <summary>Runs <paramref name="write"/> in one IMMEDIATE transaction; an exception rolls it all back.</summary>
    private T Write<T>(Func<SqliteConnection, SqliteTransaction, T> write)
    {
        using var connection = OpenConnection();
        using var tx = connection.BeginTransaction(deferred: false);
        var result = write(connection, tx);
        tx.Commit();
        return result;
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? tx, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        return command;
    }

    private static void ValidateEntries(string field, IReadOnlyDictionary<string, string>? entries, int maxValueLength)
    {
        if (entries is null)
        {
            return;
        }

        Validate.Count(field, entries.Count, Limits.MaxItemsPerRequest);
        foreach (var (key, value) in entries)
        {
            Validate.Name($"{field} key", key, Limits.MaxKeyLength);
            Validate.Text($"{field}['{key}']", value, maxValueLength);
        }
    }

    /// <summary>A non-empty batch of entries within the limits; otherwise InvalidArgument naming the field.</summary>
    private static void ValidateBatch(string field, IReadOnlyDictionary<string, string> entries, int maxValueLength)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count == 0)
        {
            MetricStoreException.InvalidArgument($"{field} is empty; give at least one entry");
        }

        ValidateEntries(field, entries, maxValueLength);
    }

    /// <summary>
    /// Reads the items of one keyset page. <paramref name="keys"/> holds up to size + 1 keys: the
    /// extra one only tells that another page exists.
    /// </summary>
    private static Page<T> ReadPage<TKey, T>(SqliteConnection connection, List<TKey> keys, int size, Func<SqliteConnection, TKey, T> read, Func<T, string> tokenAfter)
    {
        var items = new List<T>(Math.Min(keys.Count, size));
        for (var i = 0; i < keys.Count && i < size; i++)
        {
            items.Add(read(connection, keys[i]));
        }

        return new Page<T>(items, keys.Count > size ? tokenAfter(items[^1]) : null);
    }

    private static void UpsertEntries(SqliteConnection connection, SqliteTransaction tx, string table, string ownerColumn, object owner, IReadOnlyDictionary<string, string> entries)
    {
        using var upsert = Command(connection, tx, $"INSERT INTO {table} ({ownerColumn}, key, value) VALUES ($o, $k, $v) ON CONFLICT ({ownerColumn}, key) DO UPDATE SET value = excluded.value");
        var o = upsert.Parameters.AddWithValue("$o", owner);
        var k = upsert.Parameters.Add("$k", SqliteType.Text);
        var v = upsert.Parameters.Add("$v", SqliteType.Text);
        foreach (var (key, value) in entries)
        {
            k.Value = key;
            v.Value = value ?? "";
            upsert.ExecuteNonQuery();
        }
    }

    private static Dictionary<string, string> ReadEntries(SqliteConnection connection, string table, string ownerColumn, object owner) =>
        ReadDictionary(connection, null, $"SELECT key, value FROM {table} WHERE {ownerColumn} = $o ORDER BY key", r => r.GetString(1), ("$o", owner));

    /// <summary>Rows of (text key, value) from a query, keyed ordinally; the value is read from column 1.</summary>
    private static Dictionary<string, T> ReadDictionary<T>(SqliteConnection connection, SqliteTransaction? tx, string sql, Func<SqliteDataReader, T> value, params (string Name, object Value)[] parameters)
    {
        using var select = Command(connection, tx, sql);
        foreach (var (name, v) in parameters)
        {
            select.Parameters.AddWithValue(name, v);
        }

        using var reader = select.ExecuteReader();
        var entries = new Dictionary<string, T>(StringComparer.Ordinal);
        while (reader.Read())
        {
            entries[reader.GetString(0)] = value(reader);
        }

        return entries;
    }
}
