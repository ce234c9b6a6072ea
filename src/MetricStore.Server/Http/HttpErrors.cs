using System.Text.Json;
using MetricStore.Core;
using Microsoft.AspNetCore.Http;

namespace MetricStore.Server.Http;

/// <summary>Errors of plain HTTP endpoints, shaped like the transcoded ones: {"code": gRPC code, "message": …}.</summary>
internal static class HttpErrors
{
    public static int StatusFor(ErrorCode code) => code switch
    {
        ErrorCode.InvalidArgument or ErrorCode.FailedPrecondition or ErrorCode.DataLoss => StatusCodes.Status400BadRequest,
        ErrorCode.ResourceExhausted => StatusCodes.Status413PayloadTooLarge,
        ErrorCode.PermissionDenied => StatusCodes.Status403Forbidden,
        ErrorCode.Unauthenticated => StatusCodes.Status401Unauthorized,
        ErrorCode.NotFound => StatusCodes.Status404NotFound,
        ErrorCode.AlreadyExists => StatusCodes.Status409Conflict,
        _ => StatusCodes.Status500InternalServerError,
    };

    private static readonly JsonSerializerOptions s_json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task WriteAsync(HttpContext http, ErrorCode code, string message)
    {
        http.Response.StatusCode = StatusFor(code);
        http.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(http.Response.Body, new Dictionary<string, object> { ["code"] = (int)code, ["message"] = message }, s_json, http.RequestAborted);
    }
}
