using System.Threading.Channels;
using Grpc.Core;
using MetricStore.Core;
using MetricStore.Protocol;
using MetricStore.Storage;
using Microsoft.Extensions.Hosting;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>
/// IngestService.Write: reads requests as fast as the engine's ring accepts them (a full ring
/// stops the reads, so HTTP/2 flow control slows the sender) and, on a second task, answers each
/// in order once it is durable. At most <see cref="MaxInFlight"/> requests per stream wait for
/// durability, and all streams together hold at most <see cref="IngestAdmission"/>'s bytes of decoded
/// requests: a stream waits for room before it reads on.
/// </summary>
internal sealed class IngestGrpcService(StorageEngine engine, RunDirectory runs, IngestAdmission admission, TimeProvider clock, IHostApplicationLifetime lifetime) : IngestServiceBase
{
    public const int MaxInFlight = 64;

    public override async Task Write(IAsyncStreamReader<PooledWriteRequest> requestStream, IServerStreamWriter<V1.WriteAck> responseStream, ServerCallContext context)
    {
        var cancellation = context.CancellationToken;

        // On shutdown, stop reading, answer what is durable, and end the stream with UNAVAILABLE so
        // the client reconnects and re-sends what was not acknowledged (instead of being cut off).
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(cancellation, lifetime.ApplicationStopping);
        var inFlight = Channel.CreateBounded<InFlight>(new BoundedChannelOptions(MaxInFlight) { SingleReader = true, SingleWriter = true });
        var acks = AckLoopAsync(inFlight.Reader, responseStream, cancellation);

        // A failed ack loop (a seq gap, a stopped engine) ends the call at once: a client that waits
        // for each ack before it sends again would otherwise wait forever.
        _ = acks.ContinueWith(static (_, state) => CancelQuietly((CancellationTokenSource)state!), reading, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        string? writerId = null;
        var keys = new SeriesKeyCache();
        try
        {
            while (await requestStream.MoveNext(reading.Token))
            {
                var request = requestStream.Current;
                var rejected = new List<V1.BatchRejection>();
                WriteBatch batch;
                try
                {
                    writerId ??= CheckWriterId(request.WriterId);
                    if (!string.Equals(writerId, request.WriterId, StringComparison.Ordinal))
                    {
                        throw new RpcException(new Status(StatusCode.InvalidArgument,
                            $"writer_id changed from '{writerId}' to {Validate.Quote(request.WriterId)} within one stream; open a stream per writer"));
                    }

                    if (request.Seq == 0)
                    {
                        throw new RpcException(new Status(StatusCode.InvalidArgument, "seq 0 is not valid: a writer numbers its requests 1, 2, 3, ..."));
                    }

                    batch = IngestDecoder.Decode(request, runs, keys, clock.GetUtcNow().ToUnixTimeMilliseconds(), rejected);
                }
                catch
                {
                    request.Return(); // the pooled columns go back whatever was refused
                    throw;
                }

                long admitted;
                try
                {
                    admitted = await admission.AdmitAsync(IngestAdmission.MemoryOf(batch), reading.Token);
                }
                catch
                {
                    batch.Release?.Invoke(batch); // never handed to the engine
                    throw;
                }

                var durable = engine.WriteAsync(batch, cancellation).AsTask();
                _ = durable.ContinueWith(_ => admission.Release(admitted), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                await inFlight.Writer.WriteAsync(new InFlight(request.Seq, durable, rejected), cancellation);
                if (acks.IsCompleted)
                {
                    break; // the ack loop failed (e.g. a seq gap); its exception ends the call below
                }
            }
        }
        catch (OperationCanceledException) when (acks.IsFaulted)
        {
            // Reading was stopped because the ack loop failed; awaiting it below throws its error.
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !cancellation.IsCancellationRequested)
        {
            inFlight.Writer.TryComplete();
            await acks;
            throw new RpcException(new Status(StatusCode.Unavailable, "the server is shutting down; reconnect and re-send the requests that were not acknowledged"));
        }
        finally
        {
            inFlight.Writer.TryComplete();
        }

        await acks;
    }

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The call already ended.
        }
    }

    private static string CheckWriterId(string writerId) =>
        IngestDecoder.IsValidWriterId(writerId)
            ? writerId
            : throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"writer_id {Validate.Quote(writerId)} is not valid: 1..{IngestDecoder.MaxWriterIdLength} characters of A-Z a-z 0-9 . _ : -"));

    private static async Task AckLoopAsync(ChannelReader<InFlight> inFlight, IServerStreamWriter<V1.WriteAck> responses, CancellationToken cancellation)
    {
        await foreach (var item in inFlight.ReadAllAsync(cancellation))
        {
            var result = await item.Durable;
            if (result.Outcome == WriteOutcome.Gap)
            {
                throw new RpcException(new Status(StatusCode.FailedPrecondition,
                    $"seq {item.Seq} skips ahead: this writer's durable seq is {result.DurableSeq}, so the next seq must be {result.DurableSeq + 1}; re-send from there"));
            }

            var ack = new V1.WriteAck { DurableSeq = result.DurableSeq };
            if (result.Outcome == WriteOutcome.Durable)
            {
                ack.Rejected.AddRange(item.Rejected);
            }

            await responses.WriteAsync(ack, cancellation);
        }
    }

    private sealed record InFlight(ulong Seq, Task<WriteResult> Durable, List<V1.BatchRejection> Rejected);
}
