using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using MetricStore.Tracking;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MetricStore.Server;

/// <summary>
/// Sends the webhook deliveries that registry changes queued. Each POST carries the event JSON,
/// <c>X-MetricStore-Event</c>, <c>X-MetricStore-Delivery</c> and <c>X-MetricStore-Signature:
/// sha256=HEX</c> (HMAC-SHA256 of the body with the webhook's secret). A 2xx answer delivers it;
/// anything else (an error status, no answer within 10 s) is retried with exponential backoff
/// (1 s, 2 s, 4 s, … capped at 5 min) up to <see cref="MaxAttempts"/> attempts. Every attempt is
/// recorded (status, error, count). Runs apart from the registry: a slow or failing endpoint
/// delays only its own deliveries.
/// </summary>
internal sealed partial class WebhookDispatcher(TrackingStore store, ILogger<WebhookDispatcher> logger) : BackgroundService
{
    public const int MaxAttempts = 8;
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly HttpClient _http = new() { Timeout = s_timeout };

    /// <summary>Wait after the given number of failed attempts (1 s · 2^(n-1), at most 5 min).</summary>
    public static TimeSpan Backoff(int failedAttempts) => TimeSpan.FromMilliseconds(Math.Min(300_000, 1000 * Math.Pow(2, Math.Max(0, failedAttempts - 1))));

    public static string Sign(string secret, string body) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(body)));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        store.DeliveriesQueued += Wake;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    var due = store.DueDeliveries(32, MaxAttempts);
                    await Task.WhenAll(due.Select(d => DeliverAsync(d, stoppingToken)));
                    if (due.Count == 32)
                    {
                        continue;
                    }

                    var next = store.NextDeliveryDueMs(MaxAttempts);
                    var wait = next is { } ms ? TimeSpan.FromMilliseconds(Math.Clamp(ms - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), 10, 60_000)) : TimeSpan.FromSeconds(60);
                    await _wake.WaitAsync(wait, stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogLoopFailed(e);
                    await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            store.DeliveriesQueued -= Wake;
        }
    }

    public override void Dispose()
    {
        _http.Dispose();
        _wake.Dispose();
        base.Dispose();
    }

    private void Wake() => _wake.Release();

    private async Task DeliverAsync(Tracking.Registry.PendingDelivery delivery, CancellationToken stoppingToken)
    {
        int status = 0;
        string error;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, delivery.Url) { Content = new StringContent(delivery.Payload, Encoding.UTF8) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.Add("X-MetricStore-Event", delivery.Event);
            request.Headers.Add("X-MetricStore-Delivery", delivery.Id.ToString(CultureInfo.InvariantCulture));
            request.Headers.Add("X-MetricStore-Signature", Sign(delivery.Secret, delivery.Payload));
            using var response = await _http.SendAsync(request, stoppingToken);
            status = (int)response.StatusCode;
            error = response.IsSuccessStatusCode ? "" : $"HTTP {status} {response.ReasonPhrase}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !stoppingToken.IsCancellationRequested)
        {
            error = e is TaskCanceledException ? $"no answer within {s_timeout.TotalSeconds:0} s" : e.Message;
        }

        var delivered = status is >= 200 and < 300;
        var attempts = delivery.Attempts + 1;
        store.RecordDeliveryAttempt(delivery.Id, status, error, delivered, DateTimeOffset.UtcNow.Add(Backoff(attempts)).ToUnixTimeMilliseconds());
        if (!delivered && attempts >= MaxAttempts)
        {
            LogGaveUp(delivery.Id, delivery.Url, attempts, error);
        }
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} to {Url} failed {Attempts} times and will not be retried: {Error}")]
    private partial void LogGaveUp(long deliveryId, string url, int attempts, string error);

    [LoggerMessage(EventId = 21, Level = LogLevel.Error, Message = "The webhook dispatcher failed; retrying in 1 s")]
    private partial void LogLoopFailed(Exception exception);
}
