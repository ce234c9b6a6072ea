using Grpc.Core;
using Grpc.Core.Interceptors;
using MetricStore.Core;
using MetricStore.Protocol;
using MetricStore.Storage;
using Microsoft.Extensions.Logging;

namespace MetricStore.Server.Grpc;

/// <summary>
/// Turns refused input (<see cref="MetricStoreException"/>) into its gRPC status, which JSON
/// transcoding in turn maps to the HTTP status (400/404/409) with a JSON body. Anything else is
/// a bug: it is logged as an error and the caller sees INTERNAL without internals.
/// </summary>
internal sealed partial class ErrorInterceptor(ILogger<ErrorInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception e) when (Translate(e, context) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception e) when (Translate(e, context) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context);
        }
        catch (Exception e) when (Translate(e, context) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception e) when (Translate(e, context) is { } rpc)
        {
            throw rpc;
        }
    }

    /// <summary>The status to answer with, or null to let the exception through unchanged.</summary>
    private RpcException? Translate(Exception e, ServerCallContext context)
    {
        switch (e)
        {
            case MetricStoreException refused:
                return WireStatus.ToRpcException(refused);
            case RpcException:
                return null;
            case InvalidDataException malformed:
                // Bytes that are not a valid message (WriteRequestReader): bad input, not a server bug.
                return new RpcException(new Status(StatusCode.InvalidArgument, malformed.Message));
            case StorageStoppedException stopped:
                // Retryable: a client that keeps its unacknowledged batches re-sends them after the restart.
                LogUnexpected(e, context.Method);
                return new RpcException(new Status(StatusCode.Unavailable, stopped.Message));
            case OperationCanceledException or IOException when context.CancellationToken.IsCancellationRequested:
                // The client went away or cancelled: not a server error, nothing to log.
                return new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled"));
            default:
                LogUnexpected(e, context.Method);
                return new RpcException(new Status(StatusCode.Internal, $"internal error in {context.Method}; the server log has the details"));
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "Unexpected error in {Method}")]
    private partial void LogUnexpected(Exception exception, string method);
}
