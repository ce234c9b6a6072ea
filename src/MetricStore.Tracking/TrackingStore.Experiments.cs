using MetricStore.Core;
using Microsoft.Data.Sqlite;

namespace MetricStore.Tracking;

public sealed partial class TrackingStore
{
    /// <summary>Creates an experiment. AlreadyExists when the name is taken.</summary>
    public Experiment CreateExperiment(string name, string? description = null, IReadOnlyDictionary<string, string>? tags = null)
    {
        Validate.Name("name", name, Limits.MaxNameLength);
        Validate.Text("description", description, Limits.MaxDescriptionLength);
        ValidateEntries("tags", tags, Limits.MaxTagValueLength);

        var id = Write((connection, tx) =>
        {
            var existing = FindExperimentId(connection, tx, name);
            if (existing is { } existingId)
            {
                MetricStoreException.Throw(ErrorCode.AlreadyExists, $"experiment '{name}' already exists (id {existingId}); choose another name or use the existing experiment");
            }

            using var insert = Command(connection, tx, "INSERT INTO experiments (name, description, created_ms) VALUES ($n, $d, $t) RETURNING id");
            insert.Parameters.AddWithValue("$n", name);
            insert.Parameters.AddWithValue("$d", description ?? "");
            insert.Parameters.AddWithValue("$t", NowMs());
            var newId = (long)insert.ExecuteScalar()!;
            if (tags is { Count: > 0 })
            {
                UpsertEntries(connection, tx, "experiment_tags", "experiment_id", newId, tags);
            }

            return newId;
        });
        return GetExperiment(id);
    }

    public Experiment GetExperiment(long id)
    {
        if (id <= 0)
        {
            MetricStoreException.InvalidArgument($"experiment_id {id} is not valid: experiment ids are positive");
        }

        return Read(connection => ReadExperiment(connection, "id = $k", id))
            ?? throw new MetricStoreException(ErrorCode.NotFound, $"experiment {id} does not exist");
    }

    public Experiment GetExperimentByName(string name)
    {
        Validate.Name("name", name, Limits.MaxNameLength);
        return Read(connection => ReadExperiment(connection, "name = $k", name))
            ?? throw new MetricStoreException(ErrorCode.NotFound, $"experiment '{name}' does not exist");
    }

    /// <summary>Experiments in creation order, a page at a time.</summary>
    /// <summary>Experiments in id order, a page at a time; with <paramref name="text"/>, only those whose name or description has every word (full text).</summary>
    public Page<Experiment> ListExperiments(int pageSize = 0, string? pageToken = null, string? text = null)
    {
        var size = Validate.PageSize("page_size", pageSize);
        var after = PageToken.Decode("page_token", pageToken, "experiments")?.A ?? 0;
        if (text is { Length: > MaxTextLength })
        {
            MetricStoreException.InvalidArgument($"text is {text.Length} characters long; the limit is {MaxTextLength}");
        }

        var fullText = Search.SearchText.FullTextQuery(text);
        return Read(connection =>
        {
            var ids = new List<long>(size + 1);
            var matching = fullText is null ? "" : " AND id IN (SELECT rowid FROM experiments_fts WHERE experiments_fts MATCH $text)";
            using (var select = Command(connection, null, $"SELECT id FROM experiments WHERE id > $after{matching} ORDER BY id LIMIT $limit"))
            {
                if (fullText is not null)
                {
                    select.Parameters.AddWithValue("$text", fullText);
                }

                select.Parameters.AddWithValue("$after", after);
                select.Parameters.AddWithValue("$limit", size + 1);
                using var reader = select.ExecuteReader();
                while (reader.Read())
                {
                    ids.Add(reader.GetInt64(0));
                }
            }

            return ReadPage(connection, ids, size, (c, id) => ReadExperiment(c, "id = $k", id)!, last => PageToken.Encode("experiments", last.Id, ""));
        });
    }

    /// <summary>Creates or overwrites tags of an experiment, all or nothing.</summary>
    public Experiment SetExperimentTags(long id, IReadOnlyDictionary<string, string> tags)
    {
        ValidateBatch("tags", tags, Limits.MaxTagValueLength);
        Write((connection, tx) =>
        {
            using (var exists = Command(connection, tx, "SELECT 1 FROM experiments WHERE id = $id"))
            {
                exists.Parameters.AddWithValue("$id", id);
                if (exists.ExecuteScalar() is null)
                {
                    MetricStoreException.NotFound($"experiment {id} does not exist");
                }
            }

            UpsertEntries(connection, tx, "experiment_tags", "experiment_id", id, tags);
            return 0;
        });
        return GetExperiment(id);
    }

    private static long? FindExperimentId(SqliteConnection connection, SqliteTransaction? tx, string name)
    {
        using var find = Command(connection, tx, "SELECT id FROM experiments WHERE name = $n");
        find.Parameters.AddWithValue("$n", name);
        return find.ExecuteScalar() is long id ? id : null;
    }

    private static Experiment? ReadExperiment(SqliteConnection connection, string where, object key)
    {
        long id;
        string name, description;
        long created;
        using (var select = Command(connection, null, $"SELECT id, name, description, created_ms FROM experiments WHERE {where}"))
        {
            select.Parameters.AddWithValue("$k", key);
            using var reader = select.ExecuteReader();
            if (!reader.Read())
            {
                return null;
            }

            id = reader.GetInt64(0);
            name = reader.GetString(1);
            description = reader.GetString(2);
            created = reader.GetInt64(3);
        }

        var tags = ReadEntries(connection, "experiment_tags", "experiment_id", id);
        return new Experiment(id, name, description, tags, created);
    }
}
