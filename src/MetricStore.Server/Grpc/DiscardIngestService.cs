using Grpc.Core;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>
/// Benchmark-only ingest sink (serve --ingest-sink discard): the same stream, messages and
/// protobuf decoding as the real service, acknowledged at once and stored nowhere. It measures the
/// machine's gRPC ceiling in the same run as the real engine; never use it for data.
/// </summary>
internal sealed class DiscardIngestService : V1.IngestService.IngestServiceBase
{
    public override async Task Write(IAsyncStreamReader<V1.WriteRequest> requestStream, IServerStreamWriter<V1.WriteAck> responseStream, ServerCallContext context)
    {
        var ack = new V1.WriteAck();
        while (await requestStream.MoveNext(context.CancellationToken))
        {
            ack.DurableSeq = requestStream.Current.Seq;
            await responseStream.WriteAsync(ack, context.CancellationToken);
        }
    }
}
