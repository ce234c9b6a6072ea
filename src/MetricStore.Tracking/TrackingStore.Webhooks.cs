using System.Text.Json;
using MetricStore.Core;
using MetricStore.Tracking.Registry;
using Microsoft.Data.Sqlite;

namespace MetricStore.Tracking;

/// <summary>
/// Webhook subscriptions and their deliveries. A registry change queues its deliveries in its own
/// transaction (the outbox); a dispatcher in the server sends them later, so a slow or failing
/// endpoint never blocks or fails the change.
/// </summary>
public sealed partial class TrackingStore
{
    /// <summary>The events a webhook may subscribe to.</summary>
    public static readonly IReadOnlyList<string> WebhookEvents =
        ["version.created", "stage.changed", "alias.changed", "request.created", "request.approved", "request.rejected"];

    public WebhookInfo AddWebhook(Actor actor, string model, string url, IReadOnlyList<string>? events, string secret)
    {
        CheckModelName(model);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || url.Length > 2048)
        {
            MetricStoreException.InvalidArgument($"url {Validate.Quote(url)} is not an http:// or https:// URL of at most 2048 characters");
        }

        foreach (var e in events ?? [])
        {
            if (!WebhookEvents.Contains(e))
            {
                MetricStoreException.InvalidArgument($"event {Validate.Quote(e)} is not one of {string.Join(", ", WebhookEvents)}");
            }
        }

        if (secret is null || secret.Length is < 16 or > 256)
        {
            MetricStoreException.InvalidArgument($"secret is {secret?.Length ?? 0} characters; give 16..256 (it keys the HMAC-SHA256 signature)");
        }

        var list = string.Join(',', (events ?? []).Distinct(StringComparer.Ordinal));
        return Audited(actor, "add_webhook", model, 0, url, (connection, tx) =>
        {
            RequireRole(actor, Role.Writer, "add a webhook");
            RequireModel(connection, tx, model);
            using var insert = Command(connection, tx, "INSERT INTO webhooks (model, url, events, secret, created_ms) VALUES ($m, $u, $e, $s, $t) RETURNING id, created_ms");
            insert.Parameters.AddWithValue("$m", model);
            insert.Parameters.AddWithValue("$u", url);
            insert.Parameters.AddWithValue("$e", list);
            insert.Parameters.AddWithValue("$s", secret);
            insert.Parameters.AddWithValue("$t", NowMs());
            using var reader = insert.ExecuteReader();
            reader.Read();
            var info = new WebhookInfo(reader.GetInt64(0), model, url, list.Length == 0 ? [] : list.Split(','), reader.GetInt64(1));
            reader.Close();
            AppendAudit(connection, tx, actor, "add_webhook", model, 0, "", url, list.Length == 0 ? "all events" : list, allowed: true);
            return info;
        });
    }

    public IReadOnlyList<WebhookInfo> ListWebhooks(string model)
    {
        CheckModelName(model);
        return Read(connection =>
        {
            _ = ReadModel(connection, null, model) ?? throw ModelNotFound(model);
            using var select = Command(connection, null, "SELECT id, url, events, created_ms FROM webhooks WHERE model = $m ORDER BY id");
            select.Parameters.AddWithValue("$m", model);
            using var reader = select.ExecuteReader();
            var hooks = new List<WebhookInfo>();
            while (reader.Read())
            {
                var events = reader.GetString(2);
                hooks.Add(new WebhookInfo(reader.GetInt64(0), model, reader.GetString(1), events.Length == 0 ? [] : events.Split(','), reader.GetInt64(3)));
            }

            return hooks;
        });
    }

    public IReadOnlyList<DeliveryInfo> ListDeliveries(long webhookId) => Read(connection =>
    {
        using (var exists = Command(connection, null, "SELECT 1 FROM webhooks WHERE id = $id"))
        {
            exists.Parameters.AddWithValue("$id", webhookId);
            if (exists.ExecuteScalar() is null)
            {
                MetricStoreException.NotFound($"webhook {webhookId} does not exist");
            }
        }

        using var select = Command(connection, null, "SELECT id, webhook_id, event, attempts, last_status, last_error, delivered, created_ms FROM deliveries WHERE webhook_id = $id ORDER BY id");
        select.Parameters.AddWithValue("$id", webhookId);
        using var reader = select.ExecuteReader();
        var deliveries = new List<DeliveryInfo>();
        while (reader.Read())
        {
            deliveries.Add(new DeliveryInfo(reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetInt32(3), reader.GetInt32(4), reader.GetString(5), reader.GetInt64(6) != 0, reader.GetInt64(7)));
        }

        return deliveries;
    });

    /// <summary>Deliveries not yet delivered whose next attempt is due, oldest first.</summary>
    public IReadOnlyList<PendingDelivery> DueDeliveries(int max, int maxAttempts) => Read(connection =>
    {
        using var select = Command(
            connection,
            null,
            "SELECT d.id, d.webhook_id, w.url, w.secret, d.event, d.payload, d.attempts FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id " +
            "WHERE d.delivered = 0 AND d.attempts < $max AND d.next_ms <= $now ORDER BY d.next_ms, d.id LIMIT $limit");
        select.Parameters.AddWithValue("$max", maxAttempts);
        select.Parameters.AddWithValue("$now", NowMs());
        select.Parameters.AddWithValue("$limit", max);
        using var reader = select.ExecuteReader();
        var due = new List<PendingDelivery>();
        while (reader.Read())
        {
            due.Add(new PendingDelivery(reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5), reader.GetInt32(6)));
        }

        return due;
    });

    /// <summary>Records one attempt: its status (0 = no response), error, and when to try again (ignored once delivered).</summary>
    public void RecordDeliveryAttempt(long deliveryId, int statusCode, string error, bool delivered, long nextAttemptMs) => Write((connection, tx) =>
    {
        using var update = Command(connection, tx, "UPDATE deliveries SET attempts = attempts + 1, last_status = $s, last_error = $e, delivered = $d, next_ms = $n WHERE id = $id");
        update.Parameters.AddWithValue("$s", statusCode);
        update.Parameters.AddWithValue("$e", error.Length <= 1000 ? error : error[..1000]);
        update.Parameters.AddWithValue("$d", delivered ? 1 : 0);
        update.Parameters.AddWithValue("$n", nextAttemptMs);
        update.Parameters.AddWithValue("$id", deliveryId);
        return update.ExecuteNonQuery();
    });

    /// <summary>The next time any undelivered delivery is due (for the dispatcher's sleep), or null.</summary>
    public long? NextDeliveryDueMs(int maxAttempts) => Read(connection =>
    {
        using var select = Command(connection, null, "SELECT MIN(next_ms) FROM deliveries WHERE delivered = 0 AND attempts < $max");
        select.Parameters.AddWithValue("$max", maxAttempts);
        return select.ExecuteScalar() is long next ? next : (long?)null;
    });

    /// <summary>Raised after every committed registry change, which may have queued deliveries (the dispatcher wakes up).</summary>
    public event Action? DeliveriesQueued;

    /// <summary>Queues one delivery per webhook of the model subscribed to the event, in the caller's transaction.</summary>
    private void Enqueue(SqliteConnection connection, SqliteTransaction tx, string model, string @event, Actor actor, long version, string from, string to, long? requestId, string? alias = null)
    {
        var payload = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["event"] = @event,
            ["model"] = model,
            ["version"] = version,
            ["from"] = from,
            ["to"] = to,
            ["alias"] = alias,
            ["request_id"] = requestId,
            ["actor"] = actor.Name,
            ["time_ms"] = NowMs(),
        });
        using var insert = Command(
            connection,
            tx,
            "INSERT INTO deliveries (webhook_id, event, payload, next_ms, created_ms) " +
            "SELECT id, $e, $p, $t, $t FROM webhooks WHERE model = $m AND (events = '' OR ',' || events || ',' LIKE '%,' || $e || ',%')");
        insert.Parameters.AddWithValue("$e", @event);
        insert.Parameters.AddWithValue("$p", payload);
        insert.Parameters.AddWithValue("$t", NowMs());
        insert.Parameters.AddWithValue("$m", model);
        insert.ExecuteNonQuery();
    }
}
