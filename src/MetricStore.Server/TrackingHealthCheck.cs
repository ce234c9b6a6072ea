using MetricStore.Tracking;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace MetricStore.Server;

/// <summary>Healthy when the metadata database answers a read.</summary>
internal sealed class TrackingHealthCheck(TrackingStore store) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            return Task.FromResult(store.Ping() ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("metadata database did not answer"));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("metadata database failed", e));
        }
    }
}
