using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using Apache.Arrow;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;
using MetricStore.Core;
using MetricStore.Server.Grpc;
using MetricStore.Storage;
using Microsoft.AspNetCore.Http;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Http;

/// <summary>
/// <c>GET /v1/query/points?run_id=…&amp;metric=…&amp;label.KEY=VALUE&amp;start_step=…&amp;end_step=…&amp;max_chunk_points=…</c>:
/// the full-resolution points of one series in [start_step, end_step] (an absent end is open), streamed. With <c>Accept: application/vnd.apache.arrow.stream</c>
/// (or <c>format=arrow</c>) an Arrow IPC stream of record batches (step int64, value float64,
/// timestamp_ms int64) that pyarrow and Arrow JS read directly; otherwise JSON column chunks
/// <c>{"chunks":[{"steps":[…],"values":[…],"timestamps_ms":[…]},…]}</c> with NaN and ±Inf as the strings "NaN",
/// "Infinity" and "-Infinity" (as protobuf JSON writes them).
/// </summary>
internal static class PointsEndpoint
{
    public const string ArrowStreamType = "application/vnd.apache.arrow.stream";

    private static readonly Schema s_schema = new Schema.Builder()
        .Field(f => f.Name("step").DataType(Int64Type.Default).Nullable(false))
        .Field(f => f.Name("value").DataType(DoubleType.Default).Nullable(false))
        .Field(f => f.Name("timestamp_ms").DataType(Int64Type.Default).Nullable(false))
        .Build();

    public static async Task HandleAsync(HttpContext http, StorageEngine engine, RunDirectory runs)
    {
        SeriesRead read;
        try
        {
            read = Parse(http.Request.Query, engine, runs);
        }
        catch (MetricStoreException e)
        {
            await HttpErrors.WriteAsync(http, e.Code, e.Message);
            return;
        }

        var arrow = string.Equals(http.Request.Query["format"], "arrow", StringComparison.OrdinalIgnoreCase)
            || http.Request.Headers.Accept.Any(a => a is not null && a.Contains(ArrowStreamType, StringComparison.OrdinalIgnoreCase));
        var points = engine.ReadPointsAsync(read.Key, read.From, read.To, read.ChunkPoints, http.RequestAborted);
        if (arrow)
        {
            http.Response.ContentType = ArrowStreamType;
            await WriteArrowAsync(http.Response.Body, points, http.RequestAborted);
        }
        else
        {
            http.Response.ContentType = "application/json";
            await WriteJsonAsync(http.Response.BodyWriter.AsStream(), points, http.RequestAborted);
        }
    }

    private static SeriesRead Parse(IQueryCollection query, StorageEngine engine, RunDirectory runs)
    {
        var key = new V1.SeriesKey { RunId = query["run_id"].ToString(), Metric = query["metric"].ToString() };
        foreach (var (name, value) in query)
        {
            if (name.StartsWith("label.", StringComparison.Ordinal))
            {
                key.Labels[name["label.".Length..]] = value.ToString();
            }
        }

        return SeriesRead.Parse(key, "key", Long(query, "start_step", long.MinValue), Long(query, "end_step", long.MaxValue), (int)Math.Clamp(Long(query, "max_chunk_points", 0), int.MinValue, int.MaxValue), runs, engine);
    }

    /// <summary>An integer query parameter; <paramref name="absent"/> when not given (an open end of the range).</summary>
    private static long Long(IQueryCollection query, string name, long absent)
    {
        var text = query[name].ToString();
        if (text.Length == 0)
        {
            return absent;
        }

        return long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new MetricStoreException(ErrorCode.InvalidArgument, $"{name} '{text}' is not an integer");
    }

    /// <summary>One record batch per slice; the arrays wrap the engine's columns without a copy.</summary>
    internal static async Task WriteArrowAsync(Stream output, IAsyncEnumerable<PointSlice> points, CancellationToken cancellationToken)
    {
        using var writer = new ArrowStreamWriter(output, s_schema, leaveOpen: true);
        await writer.WriteStartAsync(cancellationToken);
        await foreach (var slice in points)
        {
            using var batch = new RecordBatch(s_schema,
            [
                new Int64Array(Wrap(slice.Source.Steps, slice.Offset, slice.Count), ArrowBuffer.Empty, slice.Count, 0, 0),
                new DoubleArray(Wrap(slice.Source.Values, slice.Offset, slice.Count), ArrowBuffer.Empty, slice.Count, 0, 0),
                new Int64Array(Wrap(slice.Source.Timestamps, slice.Offset, slice.Count), ArrowBuffer.Empty, slice.Count, 0, 0),
            ], slice.Count);
            await writer.WriteRecordBatchAsync(batch, cancellationToken);
        }

        await writer.WriteEndAsync(cancellationToken);
    }

    private static ArrowBuffer Wrap<T>(T[] array, int offset, int count)
        where T : unmanaged => new(new ArrayBytes<T>(array, offset, count).Memory);

    /// <summary>One JSON object per slice, written and flushed as it comes: the response never holds the series.</summary>
    private static async Task WriteJsonAsync(Stream output, IAsyncEnumerable<PointSlice> points, CancellationToken cancellationToken)
    {
        await using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteStartArray("chunks");
        await foreach (var slice in points)
        {
            json.WriteStartObject();
            json.WriteStartArray("steps");
            foreach (var step in slice.Steps)
            {
                json.WriteNumberValue(step);
            }

            json.WriteEndArray();
            json.WriteStartArray("values");
            foreach (var value in slice.Values)
            {
                if (double.IsFinite(value))
                {
                    json.WriteNumberValue(value);
                }
                else
                {
                    json.WriteStringValue(double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
                }
            }

            json.WriteEndArray();
            json.WriteStartArray("timestamps_ms");
            foreach (var timestamp in slice.Timestamps)
            {
                json.WriteNumberValue(timestamp);
            }

            json.WriteEndArray();
            json.WriteEndObject();
            await json.FlushAsync(cancellationToken);
        }

        json.WriteEndArray();
        json.WriteEndObject();
        await json.FlushAsync(cancellationToken);
    }

    /// <summary>The bytes of part of a primitive array as Memory&lt;byte&gt;, pinning it while Arrow holds a pin.</summary>
    private sealed class ArrayBytes<T>(T[] array, int offset, int count) : MemoryManager<byte>
        where T : unmanaged
    {
        private GCHandle _pin;

        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(array.AsSpan(offset, count));

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            if (!_pin.IsAllocated)
            {
                _pin = GCHandle.Alloc(array, GCHandleType.Pinned);
            }

            var start = (byte*)_pin.AddrOfPinnedObject() + ((long)offset * sizeof(T)) + elementIndex;
            return new MemoryHandle(start, default, this);
        }

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
            if (_pin.IsAllocated)
            {
                _pin.Free();
            }
        }
    }
}
