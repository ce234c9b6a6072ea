using Grpc.Core;
using MetricStore.Core;
using MetricStore.Storage;
using MetricStore.Storage.Query;
using Microsoft.Extensions.Logging;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>QueryService: full-resolution streams, exact downsampled reads and per-series summaries.</summary>
internal sealed class QueryGrpcService(StorageEngine engine, RunDirectory runs, ReadStallPolicy stall, ILogger<ReadStallWatch> log) : V1.QueryService.QueryServiceBase
{
    public const int DefaultChunkPoints = 65_536;
    public const int MaxChunkPoints = 1_000_000;
    public const int MaxDownsampleRuns = 100;
    public const int MaxBuckets = 10_000;
    public const int MaxLinePoints = 100_000;
    public const int MaxSummaryRuns = 1000;
    public const int MaxSummaryMetrics = 100;

    public override async Task ReadSeries(V1.ReadSeriesRequest request, IServerStreamWriter<V1.SeriesChunk> responseStream, ServerCallContext context)
    {
        var whole = request.StartStep == 0 && request.EndStep == 0;
        var read = SeriesRead.Parse(request.Key, "key", whole ? long.MinValue : request.StartStep, whole ? long.MaxValue : request.EndStep, request.MaxChunkPoints, runs, engine);
        using var watch = new ReadStallWatch(context.GetHttpContext(), stall, log);

        // One message for the whole read: WriteAsync has serialized it into the response by the time
        // it completes, and Clear keeps a repeated field's array. A new message per slice grew three
        // arrays per slice, 1.5 MB of large-object garbage per 64k points, which under a full read
        // of long series (bench ingest's verification) set the server's peak RSS.
        var chunk = new V1.SeriesChunk();
        await foreach (var slice in watch.Watch(engine.ReadPointsAsync(read.Key, read.From, read.To, read.ChunkPoints, context.CancellationToken)))
        {
            chunk.Steps.Clear();
            chunk.Values.Clear();
            chunk.TimestampsMs.Clear();
            chunk.Steps.AddRange(new ArraySegment<long>(slice.Source.Steps, slice.Offset, slice.Count));
            chunk.Values.AddRange(new ArraySegment<double>(slice.Source.Values, slice.Offset, slice.Count));
            chunk.TimestampsMs.AddRange(new ArraySegment<long>(slice.Source.Timestamps, slice.Offset, slice.Count));
            await responseStream.WriteAsync(chunk, context.CancellationToken);
        }
    }

    public override async Task<V1.ReadDownsampledResponse> ReadDownsampled(V1.ReadDownsampledRequest request, ServerCallContext context)
    {
        if (request.RunIds.Count is < 1 or > MaxDownsampleRuns)
        {
            MetricStoreException.InvalidArgument($"run_ids has {request.RunIds.Count} runs; give 1..{MaxDownsampleRuns}");
        }

        var keys = new SeriesKey[request.RunIds.Count];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = SeriesKey.Create($"run_ids[{i}]", request.RunIds[i], request.Metric, request.Labels);
            for (var j = 0; j < i; j++)
            {
                if (keys[j].RunId == keys[i].RunId)
                {
                    MetricStoreException.InvalidArgument($"run_ids[{i}] '{request.RunIds[i]}' repeats run_ids[{j}]");
                }
            }

            RequireRun($"run_ids[{i}]", keys[i].RunId);
        }

        if (request.Buckets is < 1 or > MaxBuckets)
        {
            MetricStoreException.InvalidArgument($"buckets {request.Buckets} is out of range; give 1..{MaxBuckets}");
        }

        if (request.LttbPoints != 0 && request.LttbPoints is < 3 or > MaxLinePoints)
        {
            MetricStoreException.InvalidArgument($"lttb_points {request.LttbPoints} is out of range; give 0 (none) or 3..{MaxLinePoints}");
        }

        var response = new V1.ReadDownsampledResponse();
        long start = request.StartStep, end = request.EndStep;
        if (start == 0 && end == 0)
        {
            // The union of the runs' step ranges.
            start = long.MaxValue;
            end = long.MinValue;
            foreach (var key in keys)
            {
                if (await engine.GetSummaryAsync(key) is { } summary)
                {
                    start = Math.Min(start, summary.Aggregate.FirstStep);
                    end = Math.Max(end, summary.Aggregate.LastStep);
                }
            }

            if (start > end)
            {
                // No run has a point: every series is empty.
                response.Series.AddRange(keys.Select(k => NewSeries(k)));
                return response;
            }
        }
        else if (end < start)
        {
            MetricStoreException.InvalidArgument($"end_step {end} is before start_step {start}");
        }

        var grid = BucketGrid.Create(start, end, request.Buckets);
        response.StartStep = grid.Start;
        response.EndStep = grid.End;
        response.BucketWidth = grid.Width;
        foreach (var key in keys)
        {
            context.CancellationToken.ThrowIfCancellationRequested();
            var series = NewSeries(key);
            using var result = await engine.DownsampleAsync(key, grid, request.LttbPoints);
            if (result is not null)
            {
                Fill(series, result);
            }

            response.Series.Add(series);
        }

        return response;
    }

    public override async Task<V1.LatestValuesResponse> LatestValues(V1.LatestValuesRequest request, ServerCallContext context)
    {
        if (request.RunIds.Count is < 1 or > MaxSummaryRuns)
        {
            MetricStoreException.InvalidArgument($"run_ids has {request.RunIds.Count} runs; give 1..{MaxSummaryRuns}");
        }

        if (request.Metrics.Count > MaxSummaryMetrics)
        {
            MetricStoreException.InvalidArgument($"metrics has {request.Metrics.Count} names; give at most {MaxSummaryMetrics} (none = every metric)");
        }

        for (var i = 0; i < request.RunIds.Count; i++)
        {
            RunId.Check($"run_ids[{i}]", request.RunIds[i]);
            RequireRun($"run_ids[{i}]", request.RunIds[i]);
        }

        for (var i = 0; i < request.Metrics.Count; i++)
        {
            Validate.Name($"metrics[{i}]", request.Metrics[i], SeriesKey.MaxMetricLength);
        }

        var response = new V1.LatestValuesResponse();
        var metrics = request.Metrics.Count == 0 ? null : new HashSet<string>(request.Metrics, StringComparer.Ordinal);
        foreach (var summary in await engine.SummariesAsync(request.RunIds.Distinct(StringComparer.Ordinal), metrics))
        {
            response.Summaries.Add(ToProto(summary));
        }

        return response;
    }

    public override async Task<V1.ListMetricsResponse> ListMetrics(V1.ListMetricsRequest request, ServerCallContext context)
    {
        RunId.Check("run_id", request.RunId);
        RequireRun("run_id", request.RunId);
        var response = new V1.ListMetricsResponse();
        foreach (var summary in await engine.SummariesAsync([request.RunId]))
        {
            response.Summaries.Add(ToProto(summary));
        }

        return response;
    }

    private void RequireRun(string field, string runId)
    {
        if (!runs.Exists(runId))
        {
            throw new MetricStoreException(ErrorCode.NotFound, $"{field}: run '{runId}' does not exist");
        }
    }

    private static V1.DownsampledSeries NewSeries(SeriesKey key)
    {
        var series = new V1.DownsampledSeries { RunId = key.RunId };
        foreach (var (k, v) in key.Labels)
        {
            series.Labels[k] = v;
        }

        return series;
    }

    private static void Fill(V1.DownsampledSeries series, DownsampledSeries result)
    {
        var buckets = result.Buckets;
        var filled = 0;
        foreach (ref readonly var bucket in buckets)
        {
            filled += bucket.Count == 0 ? 0 : 1;
        }

        foreach (var column in new[] { series.BucketStartStep, series.BucketEndStep, series.Count, series.MinStep, series.MaxStep, series.FirstStep, series.LastStep, series.NanCount, series.InfCount })
        {
            column.Capacity = filled;
        }

        foreach (var column in new[] { series.Min, series.Max, series.Mean, series.FirstValue, series.LastValue })
        {
            column.Capacity = filled;
        }

        for (var b = 0; b < buckets.Length; b++)
        {
            var a = buckets[b];
            if (a.Count == 0)
            {
                continue;
            }

            var finite = a.FiniteCount > 0;
            series.BucketStartStep.Add(result.Grid.BucketStart(b));
            series.BucketEndStep.Add(result.Grid.BucketEnd(b));
            series.Count.Add(a.Count);
            series.Min.Add(finite ? a.Min : double.NaN);
            series.Max.Add(finite ? a.Max : double.NaN);
            series.Mean.Add(a.Mean);
            series.MinStep.Add(finite ? a.MinStep : a.FirstStep);
            series.MaxStep.Add(finite ? a.MaxStep : a.FirstStep);
            series.FirstStep.Add(a.FirstStep);
            series.FirstValue.Add(a.First);
            series.LastStep.Add(a.LastStep);
            series.LastValue.Add(a.Last);
            series.NanCount.Add(a.NanCount);
            series.InfCount.Add(a.InfCount);
        }

        series.LttbSteps.AddRange(result.LineSteps);
        series.LttbValues.AddRange(result.LineValues);
    }

    internal static V1.SeriesSummary ToProto(SeriesSummary summary)
    {
        var a = summary.Aggregate;
        var finite = a.FiniteCount > 0;
        var key = new V1.SeriesKey { RunId = summary.Key.RunId, Metric = summary.Key.Metric };
        foreach (var (k, v) in summary.Key.Labels)
        {
            key.Labels[k] = v;
        }

        return new V1.SeriesSummary
        {
            Key = key,
            Count = a.Count,
            FirstStep = a.FirstStep,
            FirstValue = a.First,
            LastStep = a.LastStep,
            LastValue = a.Last,
            LastTimestampMs = a.LastTimestamp,
            Min = finite ? a.Min : double.NaN,
            Max = finite ? a.Max : double.NaN,
            Mean = a.Mean,
            NanCount = a.NanCount,
            InfCount = a.InfCount,
        };
    }
}

/// <summary>A validated full-resolution read: series, inclusive step range and chunk size (shared by gRPC and HTTP).</summary>
internal sealed record SeriesRead(SeriesKey Key, long From, long To, int ChunkPoints)
{
    public static SeriesRead Parse(V1.SeriesKey? key, string field, long from, long to, int maxChunkPoints, RunDirectory runs, StorageEngine engine)
    {
        if (key is null)
        {
            MetricStoreException.InvalidArgument($"{field} is missing");
        }

        var seriesKey = SeriesKey.Create(field, key.RunId, key.Metric, key.Labels);
        var chunkPoints = maxChunkPoints == 0 ? QueryGrpcService.DefaultChunkPoints : maxChunkPoints;
        if (chunkPoints is < 1 or > QueryGrpcService.MaxChunkPoints)
        {
            MetricStoreException.InvalidArgument($"max_chunk_points {maxChunkPoints} is out of range; use 1..{QueryGrpcService.MaxChunkPoints}, or 0 for {QueryGrpcService.DefaultChunkPoints}");
        }

        if (to < from)
        {
            MetricStoreException.InvalidArgument($"end_step {to} is before start_step {from}");
        }

        if (!runs.Exists(seriesKey.RunId))
        {
            throw new MetricStoreException(ErrorCode.NotFound, $"{field}.run_id: run '{seriesKey.RunId}' does not exist");
        }

        if (!engine.HasSeries(seriesKey))
        {
            throw new MetricStoreException(ErrorCode.NotFound, $"series {seriesKey} has no points");
        }

        return new SeriesRead(seriesKey, from, to, chunkPoints);
    }
}
