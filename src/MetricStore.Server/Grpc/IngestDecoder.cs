using System.Buffers;
using Grpc.Core;
using MetricStore.Core;
using MetricStore.Protocol;
using MetricStore.Storage;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>
/// Turns one decoded WriteRequest into an engine <see cref="WriteBatch"/>, refusing bad batches one
/// by one (each with a status naming the field and value) so they never poison the request's other
/// batches or the store. Columns move from the request's pooled arrays into the batch without a copy
/// (float32 values are widened into a pooled array); the engine's release callback returns them.
/// </summary>
internal static class IngestDecoder
{
    public const int MaxPointsPerBatch = 1_000_000;
    public const int MaxBatchesPerRequest = 10_000;
    public const int MaxWriterIdLength = 128;

    private static readonly Action<WriteBatch> s_release = ReturnArrays;

    public static bool IsValidWriterId(string writerId)
    {
        if (writerId.Length is 0 or > MaxWriterIdLength)
        {
            return false;
        }

        foreach (var c in writerId)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('.' or '_' or ':' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    public static WriteBatch Decode(PooledWriteRequest request, RunDirectory runs, SeriesKeyCache keys, long nowMs, List<V1.BatchRejection> rejected)
    {
        if (request.Batches.Count > MaxBatchesPerRequest)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"request seq {request.Seq} has {request.Batches.Count} batches; the limit is {MaxBatchesPerRequest}"));
        }

        var series = new List<SeriesPoints>(request.Batches.Count);
        for (var i = 0; i < request.Batches.Count; i++)
        {
            var batch = request.Batches[i];
            var (key, error) = Check(request, batch, i, runs, keys);
            if (error is { } refused)
            {
                batch.Return();
                rejected.Add(new V1.BatchRejection { Seq = request.Seq, BatchIndex = (uint)i, Code = (int)refused.Code, Message = refused.Message });
                continue;
            }

            series.Add(ToPoints(batch, key!, nowMs));
        }

        return new WriteBatch { WriterId = request.WriterId, Seq = request.Seq, Series = series, Release = s_release };
    }

    private static (SeriesKey? Key, (StatusCode Code, string Message)? Error) Check(PooledWriteRequest request, PooledSeriesBatch batch, int index, RunDirectory runs, SeriesKeyCache keys)
    {
        if (!batch.HasKey)
        {
            return (null, (StatusCode.InvalidArgument, $"batches[{index}].key is missing"));
        }

        var n = batch.Steps.Count;
        if (n == 0)
        {
            return (null, (StatusCode.InvalidArgument, $"batches[{index}] has no points (steps is empty)"));
        }

        if (n > MaxPointsPerBatch)
        {
            return (null, (StatusCode.InvalidArgument, $"batches[{index}] has {n} points; the limit is {MaxPointsPerBatch} per batch"));
        }

        var hasDouble = batch.Values.Count > 0;
        var hasFloat = batch.ValuesF32.Count > 0;
        if (hasDouble == hasFloat)
        {
            return (null, (StatusCode.InvalidArgument, $"batches[{index}] must set exactly one of values ({batch.Values.Count}) and values_f32 ({batch.ValuesF32.Count})"));
        }

        var valueCount = hasDouble ? batch.Values.Count : batch.ValuesF32.Count;
        if (valueCount != n)
        {
            return (null, (StatusCode.InvalidArgument, $"batches[{index}] has {n} steps but {valueCount} values; columns must have equal length"));
        }

        var ts = batch.Timestamps.Count;
        if (ts is not (0 or 1) && ts != n)
        {
            return (null, (StatusCode.InvalidArgument, $"batches[{index}] has {n} steps but {ts} timestamps_ms; give 0, 1 or {n}"));
        }

        var wire = request.KeyBytes(batch);
        if (!keys.TryGet(wire, out var key))
        {
            var sent = WriteRequestReader.ParseKey(wire);
            if (!RunId.IsWellFormed(sent.RunId))
            {
                return (null, (StatusCode.InvalidArgument, $"batches[{index}].key.run_id {Validate.Quote(sent.RunId)} is not a run id: expected 32 lowercase hexadecimal characters"));
            }

            try
            {
                key = SeriesKey.Create($"batches[{index}].key", sent.RunId, sent.Metric, sent.Labels);
            }
            catch (MetricStoreException e)
            {
                return (null, ((StatusCode)(int)e.Code, e.Message));
            }

            keys.Add(wire, key);
        }

        if (!runs.Exists(key.RunId))
        {
            return (null, (StatusCode.NotFound, $"batches[{index}].key.run_id '{key.RunId}' names a run that does not exist"));
        }

        return (key, null);
    }

    private static SeriesPoints ToPoints(PooledSeriesBatch batch, SeriesKey key, long nowMs)
    {
        var n = batch.Steps.Count;
        var float32 = batch.ValuesF32.Count > 0;
        double[] values;
        if (float32)
        {
            values = ArrayPool<double>.Shared.Rent(n);
            ColumnKernels.Widen(batch.ValuesF32.Array.AsSpan(0, n), values);

            batch.ValuesF32.Return();
        }
        else
        {
            values = batch.Values.Detach();
        }

        var shared = batch.Timestamps.Count <= 1;
        long[] timestamps;
        if (batch.Timestamps.Count == 0)
        {
            timestamps = ArrayPool<long>.Shared.Rent(1);
            timestamps[0] = nowMs;
        }
        else
        {
            timestamps = batch.Timestamps.Detach();
        }

        return new SeriesPoints
        {
            Key = key,
            Count = n,
            Steps = batch.Steps.Detach(),
            Values = values,
            Timestamps = timestamps,
            Float32Origin = float32,
            SharedTimestamp = shared,
        };
    }

    private static void ReturnArrays(WriteBatch batch)
    {
        foreach (var s in batch.Series)
        {
            ArrayPool<long>.Shared.Return(s.Steps);
            ArrayPool<double>.Shared.Return(s.Values);
            ArrayPool<long>.Shared.Return(s.Timestamps);
        }
    }
}
