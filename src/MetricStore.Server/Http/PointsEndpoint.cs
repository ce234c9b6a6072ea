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
using Microsoft.Extensions.Logging;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Http;

/// <summary>
/// <c>GET /v1/query/points?run_id=…&amp;metric=…&amp;label.KEY=VALUE&amp;start_step=…&amp;end_step=…&amp;max_chunk_points=…&amp;columns=…&amp;value_type=…</c>:
/// the full-resolution points of one series in [start_step, end_step] (an absent end is open), streamed. With <c>Accept: application/vnd.apache.arrow.stream</c>
/// (or <c>format=arrow</c>) an Arrow IPC stream of record batches (step int64, value float64,
/// timestamp_ms int64) that pyarrow and Arrow JS read directly; otherwise JSON column chunks
/// <c>{"chunks":[{"steps":[…],"values":[…],"timestamps_ms":[…]},…]}</c> with NaN and ±Inf as the strings "NaN",
/// "Infinity" and "-Infinity" (as protobuf JSON writes them). <c>columns</c> (default
/// <c>step,value,timestamp_ms</c>) picks and orders the columns; <c>value_type=auto</c> sends Arrow
/// values as float32 when every value in the range is exactly a float32 (lossless, half the bytes).
/// </summary>
internal static class PointsEndpoint
{
    public const string ArrowStreamType = "application/vnd.apache.arrow.stream";

    /// <summary>The columns a response can have, in their default order.</summary>
    internal enum Column
    {
        Step,
        Value,
        TimestampMs,
    }

    internal static readonly Column[] AllColumns = [Column.Step, Column.Value, Column.TimestampMs];

    public static async Task HandleAsync(HttpContext http, StorageEngine engine, RunDirectory runs, ReadStallPolicy stall, ILogger<ReadStallWatch> log)
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

        Column[] columns;
        bool autoValueType;
        try
        {
            columns = ParseColumns(http.Request.Query["columns"].ToString());
            autoValueType = ParseValueType(http.Request.Query["value_type"].ToString());
        }
        catch (MetricStoreException e)
        {
            await HttpErrors.WriteAsync(http, e.Code, e.Message);
            return;
        }

        using var watch = new ReadStallWatch(http, stall, log);
        var arrow = string.Equals(http.Request.Query["format"], "arrow", StringComparison.OrdinalIgnoreCase)
            || http.Request.Headers.Accept.Any(a => a is not null && a.Contains(ArrowStreamType, StringComparison.OrdinalIgnoreCase));
        if (arrow)
        {
            // Decided before the first byte: an Arrow stream has one schema.
            var float32 = autoValueType && columns.Contains(Column.Value) && await engine.ValuesFitFloat32Async(read.Key, read.From, read.To);
            var points = watch.Watch(engine.ReadPointsAsync(read.Key, read.From, read.To, read.ChunkPoints, http.RequestAborted));
            http.Response.ContentType = ArrowStreamType;
            await WriteArrowAsync(http.Response.Body, points, columns, float32, http.RequestAborted);
        }
        else
        {
            var points = watch.Watch(engine.ReadPointsAsync(read.Key, read.From, read.To, read.ChunkPoints, http.RequestAborted));
            http.Response.ContentType = "application/json";
            await WriteJsonAsync(http.Response.BodyWriter.AsStream(), points, columns, http.RequestAborted);
        }
    }

    /// <summary>A comma-separated subset of step, value, timestamp_ms in the order wanted; empty = all three.</summary>
    internal static Column[] ParseColumns(string text)
    {
        if (text.Length == 0)
        {
            return AllColumns;
        }

        var columns = new List<Column>(3);
        foreach (var name in text.Split(','))
        {
            var column = name switch
            {
                "step" => Column.Step,
                "value" => Column.Value,
                "timestamp_ms" => Column.TimestampMs,
                _ => throw new MetricStoreException(ErrorCode.InvalidArgument, $"columns '{text}': unknown column '{name}'; use a comma-separated list of step, value, timestamp_ms"),
            };
            if (columns.Contains(column))
            {
                throw new MetricStoreException(ErrorCode.InvalidArgument, $"columns '{text}': '{name}' is listed twice");
            }

            columns.Add(column);
        }

        return [.. columns];
    }

    /// <summary>True for value_type=auto (float32 when every value fits exactly); float64 or empty is the default.</summary>
    internal static bool ParseValueType(string text) => text switch
    {
        "" or "float64" => false,
        "auto" => true,
        _ => throw new MetricStoreException(ErrorCode.InvalidArgument, $"value_type '{text}' is not one of float64, auto"),
    };

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

    /// <summary>
    /// One record batch per slice. Steps, float64 values and timestamps wrap the engine's columns
    /// without a copy; float32 values are narrowed into one reused buffer. Should a value that does
    /// not fit float32 turn up (written into the range after the caller checked), the stream ends
    /// before it: every point sent is exact, and only writes newer than the check can be missing.
    /// </summary>
    internal static async Task WriteArrowAsync(Stream output, IAsyncEnumerable<PointSlice> points, Column[] columns, bool float32, CancellationToken cancellationToken)
    {
        var schema = ArrowSchema(columns, float32);
        using var writer = new ArrowStreamWriter(output, schema, leaveOpen: true);
        await writer.WriteStartAsync(cancellationToken);
        float[]? narrowed = float32 ? [] : null;
        try
        {
            await foreach (var slice in points)
            {
                var count = slice.Count;
                if (narrowed is not null)
                {
                    if (narrowed.Length < count)
                    {
                        Return(narrowed);
                        narrowed = ArrayPool<float>.Shared.Rent(count);
                    }

                    var fit = Narrow(slice.Values, narrowed);
                    if (fit < count)
                    {
                        if (fit > 0)
                        {
                            await WriteBatchAsync(writer, schema, columns, slice with { Count = fit }, narrowed, cancellationToken);
                        }

                        break;
                    }
                }

                await WriteBatchAsync(writer, schema, columns, slice, narrowed, cancellationToken);
            }
        }
        finally
        {
            if (narrowed is not null)
            {
                Return(narrowed);
            }
        }

        await writer.WriteEndAsync(cancellationToken);
    }

    private static void Return(float[] buffer)
    {
        if (buffer.Length > 0)
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    private static Schema ArrowSchema(Column[] columns, bool float32)
    {
        var builder = new Schema.Builder();
        foreach (var column in columns)
        {
            builder.Field(f => f.Name(Name(column)).DataType(column switch
            {
                Column.Value when float32 => FloatType.Default,
                Column.Value => DoubleType.Default,
                _ => Int64Type.Default,
            }).Nullable(false));
        }

        return builder.Build();
    }

    private static string Name(Column column) => column switch
    {
        Column.Step => "step",
        Column.Value => "value",
        _ => "timestamp_ms",
    };

    private static async Task WriteBatchAsync(ArrowStreamWriter writer, Schema schema, Column[] columns, PointSlice slice, float[]? narrowed, CancellationToken cancellationToken)
    {
        var (source, offset, count) = (slice.Source, slice.Offset, slice.Count);
        var arrays = new IArrowArray[columns.Length];
        for (var c = 0; c < columns.Length; c++)
        {
            arrays[c] = columns[c] switch
            {
                Column.Step => new Int64Array(Wrap(source.Steps, offset, count), ArrowBuffer.Empty, count, 0, 0),
                Column.Value when narrowed is not null => new FloatArray(Wrap(narrowed, 0, count), ArrowBuffer.Empty, count, 0, 0),
                Column.Value => new DoubleArray(Wrap(source.Values, offset, count), ArrowBuffer.Empty, count, 0, 0),
                _ => new Int64Array(Wrap(source.Timestamps, offset, count), ArrowBuffer.Empty, count, 0, 0),
            };
        }

        using var batch = new RecordBatch(schema, arrays, count);
        await writer.WriteRecordBatchAsync(batch, cancellationToken);
    }

    /// <summary>Narrows values into <paramref name="into"/> while each is exactly a float32 (NaN counts); returns how many were.</summary>
    internal static int Narrow(ReadOnlySpan<double> values, Span<float> into)
    {
        for (var i = 0; i < values.Length; i++)
        {
            var f = (float)values[i];
            if (f != values[i] && !double.IsNaN(values[i]))
            {
                return i;
            }

            into[i] = f;
        }

        return values.Length;
    }

    private static ArrowBuffer Wrap<T>(T[] array, int offset, int count)
        where T : unmanaged => new(new ArrayBytes<T>(array, offset, count).Memory);

    /// <summary>One JSON object per slice, written and flushed as it comes: the response never holds the series.</summary>
    private static async Task WriteJsonAsync(Stream output, IAsyncEnumerable<PointSlice> points, Column[] columns, CancellationToken cancellationToken)
    {
        await using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteStartArray("chunks");
        await foreach (var slice in points)
        {
            json.WriteStartObject();
            foreach (var column in columns)
            {
                switch (column)
                {
                    case Column.Step:
                        WriteNumbers(json, "steps", slice.Steps);
                        break;
                    case Column.Value:
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
                        break;
                    default:
                        WriteNumbers(json, "timestamps_ms", slice.Timestamps);
                        break;
                }
            }

            json.WriteEndObject();
            await json.FlushAsync(cancellationToken);
        }

        json.WriteEndArray();
        json.WriteEndObject();
        await json.FlushAsync(cancellationToken);
    }

    private static void WriteNumbers(Utf8JsonWriter json, string name, ReadOnlySpan<long> numbers)
    {
        json.WriteStartArray(name);
        foreach (var n in numbers)
        {
            json.WriteNumberValue(n);
        }

        json.WriteEndArray();
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
