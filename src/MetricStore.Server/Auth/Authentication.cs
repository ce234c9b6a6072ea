using System.Collections.Concurrent;
using Grpc.AspNetCore.Server;
using MetricStore.Core;
using MetricStore.Server.Http;
using MetricStore.Tracking;
using MetricStore.Tracking.Registry;
using Microsoft.AspNetCore.Http;

namespace MetricStore.Server.Auth;

/// <summary>The role a plain HTTP endpoint needs (gRPC and transcoded endpoints are known by their method).</summary>
internal sealed record RequiredRole(Role Role);

/// <summary>Marks an endpoint open to everyone, even with --auth (health checks).</summary>
internal sealed record Anonymous;

/// <summary>
/// Who is calling, for every request on both ports. Without --auth every call is the local admin.
/// With --auth a request needs <c>authorization: Bearer TOKEN</c> of a user created with
/// <c>metricstore users add</c>: missing or unknown is UNAUTHENTICATED (HTTP 401), a role too low
/// for the endpoint is PERMISSION_DENIED (403). Registry changes are let through to the registry,
/// which checks the role itself so that a refused attempt lands in the audit trail.
/// </summary>
internal sealed class Authentication(TrackingStore tracking, bool enabled)
{
    /// <summary>The header a caller names itself with when the server runs without --auth.</summary>
    public const string UserHeader = "x-metricstore-user";

    private const string ActorKey = "metricstore.actor";
    private static readonly TimeSpan s_cacheFor = TimeSpan.FromSeconds(30);
    private readonly ConcurrentDictionary<string, (Actor? Actor, DateTime Until)> _tokens = new(StringComparer.Ordinal);

    public bool Enabled { get; } = enabled;

    /// <summary>The caller of a request that passed the middleware.</summary>
    public static Actor ActorOf(HttpContext http) => http.Items[ActorKey] as Actor ?? Actor.LocalAdmin;

    public async Task InvokeAsync(HttpContext http, RequestDelegate next)
    {
        if (!Enabled)
        {
            // Unverified: without --auth the caller may say who it is (x-metricstore-user), for
            // attribution in the audit trail and the requester/approver rule; everyone is admin.
            var declared = http.Request.Headers[UserHeader].ToString();
            http.Items[ActorKey] = IsUserName(declared) ? new Actor(declared, Role.Admin) : Actor.LocalAdmin;
            await next(http);
            return;
        }

        var endpoint = http.GetEndpoint();
        if (endpoint?.Metadata.GetMetadata<Anonymous>() is not null || IsHealth(http, endpoint))
        {
            await next(http);
            return;
        }

        var header = http.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            await RefuseAsync(http, ErrorCode.Unauthenticated, "this server requires a token: send 'authorization: Bearer TOKEN' (CLI: --token or METRICSTORE_TOKEN; tokens come from 'metricstore users add')");
            return;
        }

        var actor = Lookup(header[7..].Trim());
        if (actor is null)
        {
            await RefuseAsync(http, ErrorCode.Unauthenticated, "the token is not valid: no user has it");
            return;
        }

        var (required, what) = Required(endpoint);
        if (actor.Role < required)
        {
            await RefuseAsync(http, ErrorCode.PermissionDenied, $"{actor.Name} is a {actor.Role.ToString().ToLowerInvariant()}; {what} takes the role {required.ToString().ToLowerInvariant()} or higher");
            return;
        }

        http.Items[ActorKey] = actor;
        await next(http);
    }

    private Actor? Lookup(string token)
    {
        var now = DateTime.UtcNow;
        if (_tokens.TryGetValue(token, out var cached) && cached.Until > now)
        {
            return cached.Actor;
        }

        // Only known tokens are cached: a user added while the server runs can call at once.
        var actor = tracking.Authenticate(token);
        if (actor is not null)
        {
            _tokens[token] = (actor, now + s_cacheFor);
        }

        return actor;
    }

    private static bool IsUserName(string name) => name.Length is > 0 and <= 256 && !name.Any(char.IsControl) && !string.IsNullOrWhiteSpace(name);

    private static bool IsHealth(HttpContext http, Endpoint? endpoint) =>
        http.Request.Path.StartsWithSegments("/healthz", StringComparison.Ordinal)
        || endpoint?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method.ServiceName == "grpc.health.v1.Health";

    /// <summary>The role an endpoint needs: reads need reader, everything else writer; registry changes are checked by the registry.</summary>
    private static (Role Role, string What) Required(Endpoint? endpoint)
    {
        if (endpoint?.Metadata.GetMetadata<RequiredRole>() is { } role)
        {
            return (role.Role, endpoint.DisplayName ?? "this call");
        }

        if (endpoint?.Metadata.GetMetadata<GrpcMethodMetadata>() is { } grpc)
        {
            var name = grpc.Method.Name;
            var read = name.StartsWith("Get", StringComparison.Ordinal) || name.StartsWith("List", StringComparison.Ordinal)
                || name.StartsWith("Search", StringComparison.Ordinal) || name.StartsWith("Read", StringComparison.Ordinal)
                || name is "LatestValues" or "Resolve" or "Download";
            var registry = grpc.Method.ServiceName == "metricstore.v1.RegistryService";
            return (read || registry ? Role.Reader : Role.Writer, grpc.Method.FullName);
        }

        return (Role.Reader, "this call");
    }

    private static async Task RefuseAsync(HttpContext http, ErrorCode code, string message)
    {
        if (http.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true)
        {
            // A trailers-only gRPC response: HTTP 200 with the status in the headers.
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/grpc";
            http.Response.Headers["grpc-status"] = ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture);
            http.Response.Headers["grpc-message"] = Uri.EscapeDataString(message);
            return;
        }

        if (code == ErrorCode.Unauthenticated)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
        }

        await HttpErrors.WriteAsync(http, code, message);
    }
}
