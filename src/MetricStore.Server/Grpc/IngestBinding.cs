using Google.Protobuf;
using Grpc.Core;
using MetricStore.Protocol;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>
/// Binds metricstore.v1.IngestService/Write with a request marshaller that parses the wire bytes
/// straight into pooled columns (<see cref="WriteRequestReader"/>) instead of the generated parser.
/// Same method name, same messages on the wire: generated clients talk to it unchanged.
/// </summary>
internal static class IngestBinding
{
    public static readonly Marshaller<PooledWriteRequest> Requests = Marshallers.Create<PooledWriteRequest>(
        static (_, _) => throw new NotSupportedException("the server only reads WriteRequests"),
        static context => WriteRequestReader.Read(context.PayloadAsReadOnlySequence()));

    public static readonly Marshaller<V1.WriteAck> Acks = Marshallers.Create<V1.WriteAck>(
        static (ack, context) =>
        {
            context.SetPayloadLength(ack.CalculateSize());
            ack.WriteTo(context.GetBufferWriter());
            context.Complete();
        },
        static context => V1.WriteAck.Parser.ParseFrom(context.PayloadAsReadOnlySequence()));

    /// <summary>
    /// The service's descriptor, looked up by name by gRPC JSON transcoding. Without it, every start
    /// logged a warning that the descriptor could not be found (Write is a stream, so nothing is
    /// transcoded either way).
    /// </summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => V1.IngestService.Descriptor;

    public static readonly Method<PooledWriteRequest, V1.WriteAck> Write = new(
        MethodType.DuplexStreaming, "metricstore.v1.IngestService", "Write", Requests, Acks);

    /// <summary>
    /// grpc-dotnet resolves the handler itself: an override of <see cref="IngestServiceBase.Write"/>
    /// on the mapped service type (it requires a virtual declared on the attributed type).
    /// </summary>
    public static void BindService(ServiceBinderBase binder, IngestServiceBase? service) =>
        binder.AddMethod(Write, (DuplexStreamingServerMethod<PooledWriteRequest, V1.WriteAck>)null!);
}

/// <summary>IngestService/Write over pooled requests; the real engine and the benchmark sink derive from it.</summary>
[BindServiceMethod(typeof(IngestBinding), nameof(IngestBinding.BindService))]
internal abstract class IngestServiceBase
{
    public abstract Task Write(IAsyncStreamReader<PooledWriteRequest> requestStream, IServerStreamWriter<V1.WriteAck> responseStream, ServerCallContext context);
}
