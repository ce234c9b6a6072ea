using Grpc.Core;
using MetricStore.Protocol;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>
/// Benchmark-only ingest sink (serve --ingest-sink discard): the same stream, messages and
/// protobuf decoding (<see cref="Protocol.WriteRequestReader"/>) as the real service, acknowledged at once and stored nowhere. It measures the
/// machine's gRPC ceiling in the same run as the real engine; never use it for data.
/// </summary>
internal sealed class DiscardIngestService : IngestServiceBase
{
    public override async Task Write(IAsyncStreamReader<PooledWriteRequest> requestStream, IServerStreamWriter<V1.WriteAck> responseStream, ServerCallContext context)
    {
        var ack = new V1.WriteAck();
        while (await requestStream.MoveNext(context.CancellationToken))
        {
            var request = requestStream.Current;
            ack.DurableSeq = request.Seq;
            request.Return();
            await responseStream.WriteAsync(ack, context.CancellationToken);
        }
    }
}
