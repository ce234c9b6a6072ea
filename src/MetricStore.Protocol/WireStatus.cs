using Grpc.Core;
using MetricStore.Core;

namespace MetricStore.Protocol;

/// <summary>Maps Core error codes to gRPC status codes (the numbers are the same by design).</summary>
public static class WireStatus
{
    public static StatusCode ToStatusCode(ErrorCode code) => code switch
    {
        ErrorCode.InvalidArgument => StatusCode.InvalidArgument,
        ErrorCode.NotFound => StatusCode.NotFound,
        ErrorCode.AlreadyExists => StatusCode.AlreadyExists,
        ErrorCode.FailedPrecondition => StatusCode.FailedPrecondition,
        ErrorCode.ResourceExhausted => StatusCode.ResourceExhausted,
        ErrorCode.DataLoss => StatusCode.DataLoss,
        ErrorCode.PermissionDenied => StatusCode.PermissionDenied,
        ErrorCode.Unauthenticated => StatusCode.Unauthenticated,
        _ => StatusCode.Unknown,
    };

    public static RpcException ToRpcException(MetricStoreException e) => new(new Status(ToStatusCode(e.Code), e.Message));
}
