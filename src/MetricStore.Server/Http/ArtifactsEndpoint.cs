using System.Buffers;
using System.Text.Json;
using MetricStore.Core;
using MetricStore.Tracking;
using MetricStore.Tracking.Artifacts;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;

namespace MetricStore.Server.Http;

/// <summary>
/// Artifact bytes over plain HTTP (the listing is the transcoded <c>GET /v1/runs/{runId}/artifacts</c>):
/// <list type="bullet">
/// <item><c>PUT /v1/runs/{runId}/artifacts/{path}</c>: the request body is the file. An optional
/// <c>X-MetricStore-Sha256</c> header (and Content-Length) are checked before anything becomes
/// visible. 201 with the artifact's JSON; 200 when the same bytes were already there.</item>
/// <item><c>GET /v1/runs/{runId}/artifacts/{path}</c>: the bytes, with Content-Length, an ETag
/// and <c>X-MetricStore-Sha256</c> for verification, and Range requests for resuming.</item>
/// </list>
/// </summary>
internal static class ArtifactsEndpoint
{
    public const string Sha256Header = "X-MetricStore-Sha256";
    private const int ReadChunkBytes = 1024 * 1024;

    private static readonly JsonSerializerOptions s_json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static async Task PutAsync(HttpContext http, string runId, string path, ArtifactStore artifacts)
    {
        try
        {
            // The store enforces its own limit while bytes arrive; Kestrel's default would cut at 64 MiB.
            if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            {
                limit.MaxRequestBodySize = null;
            }

            var expectedSha = http.Request.Headers[Sha256Header].ToString();
            await using var upload = artifacts.BeginUpload(runId, path, http.Request.ContentLength ?? -1, expectedSha.Length == 0 ? null : expectedSha);
            var buffer = ArrayPool<byte>.Shared.Rent(ReadChunkBytes);
            try
            {
                int read;
                while ((read = await http.Request.Body.ReadAsync(buffer.AsMemory(0, ReadChunkBytes), http.RequestAborted)) > 0)
                {
                    await upload.WriteAsync(buffer.AsMemory(0, read), http.RequestAborted);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            var (info, created) = await upload.CompleteAsync(null, http.RequestAborted);
            http.Response.StatusCode = created ? StatusCodes.Status201Created : StatusCodes.Status200OK;
            await http.Response.WriteAsJsonAsync(ToJson(info), s_json, http.RequestAborted);
        }
        catch (MetricStoreException e)
        {
            await HttpErrors.WriteAsync(http, e.Code, e.Message);
        }
    }

    public static async Task GetAsync(HttpContext http, string runId, string path, ArtifactStore artifacts)
    {
        ArtifactInfo info;
        try
        {
            info = artifacts.Get(runId, path);
        }
        catch (MetricStoreException e)
        {
            await HttpErrors.WriteAsync(http, e.Code, e.Message);
            return;
        }

        http.Response.Headers[Sha256Header] = info.Sha256;
        var fileName = info.Path[(info.Path.LastIndexOf('/') + 1)..];
        await Results.File(
            artifacts.BlobPath(info.Sha256),
            "application/octet-stream",
            fileName,
            lastModified: DateTimeOffset.FromUnixTimeMilliseconds(info.CreatedTimeMs),
            entityTag: new EntityTagHeaderValue("\"" + info.Sha256 + "\""),
            enableRangeProcessing: true).ExecuteAsync(http);
    }

    public static object ToJson(ArtifactInfo info) => new
    {
        info.RunId,
        info.Path,
        info.Size,
        info.Sha256,
        info.CreatedTimeMs,
    };
}
