using MetricStore.Storage;
using MetricStore.Tracking;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MetricStore.Server;

/// <summary>
/// Copies the summaries of changed metric series from the engine into the tracking store, where run
/// search filters and orders on them (<c>metrics.NAME.last|min|max|mean|count|last_step</c>). Runs
/// every <see cref="Interval"/>, so search sees a new point within about a second. Only series
/// without labels are searchable by name; labeled series (per-rank metrics) are not copied yet.
/// </summary>
internal sealed class MetricSummarySync(StorageEngine engine, TrackingStore tracking, ILogger<MetricSummarySync> log) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>One pass: take the changed summaries and upsert them in one transaction.</summary>
    public async Task<int> SyncOnceAsync()
    {
        var summaries = await engine.TakeChangedSummariesAsync();
        var rows = summaries
            .Where(s => s.Key.Labels.Count == 0)
            .Select(s =>
            {
                var a = s.Aggregate;
                var finite = a.FiniteCount > 0;
                return new RunMetricSummary(s.Key.RunId, s.Key.Metric, a.Count, a.Last, a.LastStep, finite ? a.Min : double.NaN, finite ? a.Max : double.NaN, a.Mean);
            })
            .ToList();
        try
        {
            tracking.UpsertRunMetrics(rows);
        }
        catch
        {
            engine.MarkSummariesChanged(summaries.Select(s => s.Key)); // copied again on the next pass
            throw;
        }

        return rows.Count;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await SyncOnceAsync();
            }
            catch (Exception e) when (e is IOException or Microsoft.Data.Sqlite.SqliteException or InvalidOperationException)
            {
                log.LogWarning(e, "copying metric summaries for run search failed; retrying in {Interval}", Interval);
            }
        }
    }
}
