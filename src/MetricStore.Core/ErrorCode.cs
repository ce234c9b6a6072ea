namespace MetricStore.Core;

/// <summary>
/// What went wrong, in terms every edge can map: gRPC status codes and HTTP statuses.
/// The numbers are the google.rpc.Code values so the mapping is the identity.
/// </summary>
public enum ErrorCode
{
    /// <summary>Bad input: a field is missing, too long or malformed. gRPC 3, HTTP 400.</summary>
    InvalidArgument = 3,

    /// <summary>A referenced object does not exist. gRPC 5, HTTP 404.</summary>
    NotFound = 5,

    /// <summary>The object exists or conflicts with what is stored. gRPC 6, HTTP 409.</summary>
    AlreadyExists = 6,

    /// <summary>The caller's role does not allow the operation. gRPC 7, HTTP 403.</summary>
    PermissionDenied = 7,

    /// <summary>A size limit was passed (e.g. an artifact larger than allowed). gRPC 8, HTTP 413.</summary>
    ResourceExhausted = 8,

    /// <summary>The object is in a state that forbids the operation. gRPC 9, HTTP 400.</summary>
    FailedPrecondition = 9,

    /// <summary>Bytes do not match their declared size or sha256. gRPC 15, HTTP 400.</summary>
    DataLoss = 15,

    /// <summary>No valid credentials: a missing or unknown token. gRPC 16, HTTP 401.</summary>
    Unauthenticated = 16,
}
