using System.Diagnostics.CodeAnalysis;

namespace MetricStore.Core;

/// <summary>
/// Bad input or a refused operation, raised at the edge of a store. The message names the field
/// and the value, and says what would be accepted. Nothing was changed when it is thrown.
/// </summary>
public sealed class MetricStoreException : Exception
{
    public MetricStoreException(ErrorCode code, string message)
        : base(message)
    {
        Code = code;
    }

    public ErrorCode Code { get; }

    [DoesNotReturn]
    public static void Throw(ErrorCode code, string message) => throw new MetricStoreException(code, message);

    [DoesNotReturn]
    public static void InvalidArgument(string message) => throw new MetricStoreException(ErrorCode.InvalidArgument, message);

    [DoesNotReturn]
    public static void NotFound(string message) => throw new MetricStoreException(ErrorCode.NotFound, message);
}
