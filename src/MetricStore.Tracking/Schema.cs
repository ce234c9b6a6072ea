using System.Globalization;
using Microsoft.Data.Sqlite;

namespace MetricStore.Tracking;

/// <summary>
/// Versioned schema migrations, applied in order at start, each in its own transaction.
/// A migration, once released, is never edited: a change is a new migration at the end.
/// </summary>
internal static class Schema
{
    private static readonly string[] s_migrations =
    [
        // 1: experiments, runs, params, tags, notes, captured source.
        """
        CREATE TABLE experiments (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            name        TEXT    NOT NULL UNIQUE,
            description TEXT    NOT NULL DEFAULT '',
            created_ms  INTEGER NOT NULL
        );
        CREATE TABLE experiment_tags (
            experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
            key           TEXT    NOT NULL,
            value         TEXT    NOT NULL,
            PRIMARY KEY (experiment_id, key)
        ) WITHOUT ROWID;
        CREATE TABLE runs (
            id            TEXT    NOT NULL PRIMARY KEY,
            experiment_id INTEGER NOT NULL REFERENCES experiments(id),
            name          TEXT    NOT NULL,
            status        INTEGER NOT NULL CHECK (status BETWEEN 1 AND 4),
            start_ms      INTEGER NOT NULL,
            end_ms        INTEGER,
            parent_run_id TEXT    REFERENCES runs(id),
            hypothesis    TEXT    NOT NULL DEFAULT '',
            outcome       TEXT    NOT NULL DEFAULT '',
            git_commit    TEXT    NOT NULL DEFAULT '',
            git_branch    TEXT    NOT NULL DEFAULT '',
            git_remote    TEXT    NOT NULL DEFAULT '',
            git_dirty     INTEGER NOT NULL DEFAULT 0,
            command_line  TEXT    NOT NULL DEFAULT '',
            host          TEXT    NOT NULL DEFAULT '',
            os            TEXT    NOT NULL DEFAULT '',
            runtime       TEXT    NOT NULL DEFAULT '',
            user_name     TEXT    NOT NULL DEFAULT ''
        );
        CREATE INDEX runs_by_experiment ON runs (experiment_id, start_ms DESC, id DESC);
        CREATE TABLE params (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key    TEXT NOT NULL,
            value  TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE TABLE run_tags (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key    TEXT NOT NULL,
            value  TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        """,
        // 2: run search: metric summaries copied from the metrics engine by the server, and
        // (key, value) indexes that answer a filter's comparisons without visiting every run.
        """
        CREATE TABLE run_metrics (
            run_id    TEXT    NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            metric    TEXT    NOT NULL,
            count     INTEGER NOT NULL,
            last      REAL,
            last_step INTEGER NOT NULL,
            min       REAL,
            max       REAL,
            mean      REAL,
            PRIMARY KEY (run_id, metric)
        ) WITHOUT ROWID;
        CREATE INDEX run_metrics_by_metric ON run_metrics (metric, last);
        CREATE INDEX params_by_key_value ON params (key, value);
        CREATE INDEX run_tags_by_key_value ON run_tags (key, value);
        """,
        // 3: full-text search over run notes and experiment names and descriptions (FTS5 indexes
        // kept by triggers over the tables' own text; 'rebuild' indexes what is already there).
        """
        CREATE VIRTUAL TABLE run_notes_fts USING fts5(hypothesis, outcome, content='runs', content_rowid='rowid');
        CREATE TRIGGER run_notes_fts_insert AFTER INSERT ON runs BEGIN
            INSERT INTO run_notes_fts (rowid, hypothesis, outcome) VALUES (new.rowid, new.hypothesis, new.outcome);
        END;
        CREATE TRIGGER run_notes_fts_delete AFTER DELETE ON runs BEGIN
            INSERT INTO run_notes_fts (run_notes_fts, rowid, hypothesis, outcome) VALUES ('delete', old.rowid, old.hypothesis, old.outcome);
        END;
        CREATE TRIGGER run_notes_fts_update AFTER UPDATE OF hypothesis, outcome ON runs BEGIN
            INSERT INTO run_notes_fts (run_notes_fts, rowid, hypothesis, outcome) VALUES ('delete', old.rowid, old.hypothesis, old.outcome);
            INSERT INTO run_notes_fts (rowid, hypothesis, outcome) VALUES (new.rowid, new.hypothesis, new.outcome);
        END;
        INSERT INTO run_notes_fts (run_notes_fts) VALUES ('rebuild');
        CREATE VIRTUAL TABLE experiments_fts USING fts5(name, description, content='experiments', content_rowid='id');
        CREATE TRIGGER experiments_fts_insert AFTER INSERT ON experiments BEGIN
            INSERT INTO experiments_fts (rowid, name, description) VALUES (new.id, new.name, new.description);
        END;
        CREATE TRIGGER experiments_fts_delete AFTER DELETE ON experiments BEGIN
            INSERT INTO experiments_fts (experiments_fts, rowid, name, description) VALUES ('delete', old.id, old.name, old.description);
        END;
        CREATE TRIGGER experiments_fts_update AFTER UPDATE OF name, description ON experiments BEGIN
            INSERT INTO experiments_fts (experiments_fts, rowid, name, description) VALUES ('delete', old.id, old.name, old.description);
            INSERT INTO experiments_fts (rowid, name, description) VALUES (new.id, new.name, new.description);
        END;
        INSERT INTO experiments_fts (experiments_fts) VALUES ('rebuild');
        """,
        // 4: artifacts: a run's files by path, each pointing at bytes stored once by sha256 under
        // artifacts/blobs. A path, once written, keeps its bytes (versions and lineage refer to it).
        """
        CREATE TABLE artifacts (
            run_id     TEXT    NOT NULL REFERENCES runs(id),
            path       TEXT    NOT NULL,
            sha256     TEXT    NOT NULL,
            size       INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            PRIMARY KEY (run_id, path)
        ) WITHOUT ROWID;
        CREATE INDEX artifacts_by_sha256 ON artifacts (sha256);
        """,
        // 5: users and the model registry. Versions copy what they need from their run (artifact
        // hash, params, metric summaries), so lineage does not depend on the run's other data.
        // audit and deliveries are append-only logs; deliveries is also the webhook outbox.
        """
        CREATE TABLE users (
            name       TEXT    NOT NULL PRIMARY KEY,
            role       INTEGER NOT NULL CHECK (role BETWEEN 1 AND 4),
            token_hash TEXT    NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE models (
            name        TEXT    NOT NULL PRIMARY KEY,
            description TEXT    NOT NULL,
            created_ms  INTEGER NOT NULL,
            created_by  TEXT    NOT NULL
        );
        CREATE TABLE model_tags (
            model TEXT NOT NULL REFERENCES models(name),
            key   TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (model, key)
        ) WITHOUT ROWID;
        CREATE TABLE model_versions (
            model           TEXT    NOT NULL REFERENCES models(name),
            version         INTEGER NOT NULL,
            run_id          TEXT    NOT NULL,
            artifact_path   TEXT    NOT NULL,
            artifact_sha256 TEXT    NOT NULL,
            artifact_size   INTEGER NOT NULL,
            input_schema    TEXT    NOT NULL,
            output_schema   TEXT    NOT NULL,
            description     TEXT    NOT NULL,
            created_by      TEXT    NOT NULL,
            created_ms      INTEGER NOT NULL,
            stage           INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (model, version)
        ) WITHOUT ROWID;
        CREATE TABLE version_params (
            model   TEXT    NOT NULL,
            version INTEGER NOT NULL,
            key     TEXT    NOT NULL,
            value   TEXT    NOT NULL,
            PRIMARY KEY (model, version, key)
        ) WITHOUT ROWID;
        CREATE TABLE version_metrics (
            model   TEXT    NOT NULL,
            version INTEGER NOT NULL,
            metric  TEXT    NOT NULL,
            last    REAL,
            PRIMARY KEY (model, version, metric)
        ) WITHOUT ROWID;
        CREATE TABLE model_aliases (
            model   TEXT    NOT NULL REFERENCES models(name),
            alias   TEXT    NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (model, alias)
        ) WITHOUT ROWID;
        CREATE TABLE transition_requests (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            model            TEXT    NOT NULL,
            version          INTEGER NOT NULL,
            from_stage       INTEGER NOT NULL,
            to_stage         INTEGER NOT NULL,
            state            INTEGER NOT NULL,
            requested_by     TEXT    NOT NULL,
            decided_by       TEXT    NOT NULL DEFAULT '',
            request_comment  TEXT    NOT NULL,
            decision_comment TEXT    NOT NULL DEFAULT '',
            created_ms       INTEGER NOT NULL,
            decided_ms       INTEGER NOT NULL DEFAULT 0,
            archive_existing INTEGER NOT NULL
        );
        CREATE INDEX transition_requests_pending ON transition_requests (model, state);
        CREATE TABLE audit (
            id      INTEGER PRIMARY KEY AUTOINCREMENT,
            time_ms INTEGER NOT NULL,
            actor   TEXT    NOT NULL,
            action  TEXT    NOT NULL,
            model   TEXT    NOT NULL,
            version INTEGER NOT NULL,
            from_value TEXT NOT NULL,
            to_value   TEXT NOT NULL,
            comment TEXT    NOT NULL,
            allowed INTEGER NOT NULL
        );
        CREATE INDEX audit_by_model ON audit (model, id);
        CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TABLE webhooks (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            model      TEXT    NOT NULL REFERENCES models(name),
            url        TEXT    NOT NULL,
            events     TEXT    NOT NULL,
            secret     TEXT    NOT NULL,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE deliveries (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            webhook_id   INTEGER NOT NULL REFERENCES webhooks(id),
            event        TEXT    NOT NULL,
            payload      TEXT    NOT NULL,
            attempts     INTEGER NOT NULL DEFAULT 0,
            last_status  INTEGER NOT NULL DEFAULT 0,
            last_error   TEXT    NOT NULL DEFAULT '',
            delivered    INTEGER NOT NULL DEFAULT 0,
            next_ms      INTEGER NOT NULL,
            created_ms   INTEGER NOT NULL
        );
        CREATE INDEX deliveries_due ON deliveries (delivered, next_ms);
        """,
    ];

    /// <summary>The schema version this build writes.</summary>
    public static int LatestVersion => s_migrations.Length;

    public static void Migrate(SqliteConnection connection, TimeProvider clock)
    {
        using (var create = connection.CreateCommand())
        {
            create.CommandText = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)";
            create.ExecuteNonQuery();
        }

        var current = CurrentVersion(connection);
        if (current > LatestVersion)
        {
            throw new InvalidOperationException(
                $"the metadata database is at schema version {current}, newer than this build understands ({LatestVersion}); " +
                "run a newer MetricStore or restore a backup");
        }

        for (var version = current + 1; version <= LatestVersion; version++)
        {
            using var tx = connection.BeginTransaction();
            using (var migrate = connection.CreateCommand())
            {
                migrate.Transaction = tx;
                migrate.CommandText = s_migrations[version - 1];
                migrate.ExecuteNonQuery();
            }

            using (var record = connection.CreateCommand())
            {
                record.Transaction = tx;
                record.CommandText = "INSERT INTO schema_migrations (version, applied_ms) VALUES ($v, $t)";
                record.Parameters.AddWithValue("$v", version);
                record.Parameters.AddWithValue("$t", clock.GetUtcNow().ToUnixTimeMilliseconds());
                record.ExecuteNonQuery();
            }

            tx.Commit();
        }
    }

    public static int CurrentVersion(SqliteConnection connection)
    {
        using var query = connection.CreateCommand();
        query.CommandText = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
        return Convert.ToInt32(query.ExecuteScalar(), CultureInfo.InvariantCulture);
    }
}
