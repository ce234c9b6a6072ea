using Grpc.Core;
using MetricStore.Core;
using MetricStore.Storage;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>QueryService: full-resolution reads (downsampling and summaries arrive with the query issue).</summary>
internal sealed class QueryGrpcService(StorageEngine engine) : V1.QueryService.QueryServiceBase
{
    public const int DefaultChunkPoints = 65_536;
    public const int MaxChunkPoints = 1_000_000;

    public override async Task ReadSeries(V1.ReadSeriesRequest request, IServerStreamWriter<V1.SeriesChunk> responseStream, ServerCallContext context)
    {
        if (request.Key is null)
        {
            MetricStoreException.InvalidArgument("key is missing");
        }

        var key = SeriesKey.Create("key", request.Key.RunId, request.Key.Metric, request.Key.Labels);
        var chunkPoints = request.MaxChunkPoints == 0 ? DefaultChunkPoints : request.MaxChunkPoints;
        if (chunkPoints is < 1 or > MaxChunkPoints)
        {
            MetricStoreException.InvalidArgument($"max_chunk_points {request.MaxChunkPoints} is out of range; use 1..{MaxChunkPoints}, or 0 for {DefaultChunkPoints}");
        }

        var whole = request.StartStep == 0 && request.EndStep == 0;
        if (!whole && request.EndStep < request.StartStep)
        {
            MetricStoreException.InvalidArgument($"end_step {request.EndStep} is before start_step {request.StartStep}");
        }

        var points = await engine.ReadSeriesAsync(key, whole ? long.MinValue : request.StartStep, whole ? long.MaxValue : request.EndStep, context.CancellationToken)
            ?? throw new MetricStoreException(ErrorCode.NotFound, $"series {key} has no points");
        for (var offset = 0; offset < points.Count; offset += chunkPoints)
        {
            var n = Math.Min(chunkPoints, points.Count - offset);
            var chunk = new V1.SeriesChunk();
            chunk.Steps.AddRange(new ArraySegment<long>(points.Steps, offset, n));
            chunk.Values.AddRange(new ArraySegment<double>(points.Values, offset, n));
            chunk.TimestampsMs.AddRange(new ArraySegment<long>(points.Timestamps, offset, n));
            await responseStream.WriteAsync(chunk, context.CancellationToken);
        }
    }
}
