namespace MetricStore.Client;

/// <summary>How to reach a server. Immutable; the defaults suit a server on this machine.</summary>
public sealed record MetricStoreClientOptions
{
    /// <summary>The environment variable that names the server when no URL is given.</summary>
    public const string UrlEnvironmentVariable = "METRICSTORE_URL";

    /// <summary>The environment variable that holds the API token when none is given.</summary>
    public const string TokenEnvironmentVariable = "METRICSTORE_TOKEN";

    /// <summary>The gRPC address of a local server started with default flags.</summary>
    public const string DefaultUrl = "http://127.0.0.1:50051";

    /// <summary>The server's gRPC address, e.g. http://127.0.0.1:50051.</summary>
    public Uri Address { get; init; } = ResolveDefaultAddress();

    /// <summary>The API token sent as 'authorization: Bearer' (servers with --auth need one); default: METRICSTORE_TOKEN.</summary>
    public string? Token { get; init; } = Environment.GetEnvironmentVariable(TokenEnvironmentVariable) is { Length: > 0 } token ? token : null;

    /// <summary>
    /// The user name sent to a server without --auth (x-metricstore-user), where it is trusted as
    /// said and only attributes actions (audit, requester vs approver); default: METRICSTORE_USER.
    /// Servers with --auth ignore it: the token decides.
    /// </summary>
    public string? User { get; init; } = Environment.GetEnvironmentVariable("METRICSTORE_USER") is { Length: > 0 } user ? user : null;

    /// <summary>Deadline of each unary call (create, log params, ...). Streams have none.</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>What to capture about the process at run start (git state, diff, packages, ...); <see cref="CaptureOptions.None"/> for nothing.</summary>
    public CaptureOptions Capture { get; init; } = new();

    /// <summary>How metric points are batched and streamed.</summary>
    public MetricLoggingOptions Metrics { get; init; } = new();

    /// <summary>The address from METRICSTORE_URL, else <see cref="DefaultUrl"/>.</summary>
    public static Uri ResolveDefaultAddress()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(UrlEnvironmentVariable);
        return Parse(string.IsNullOrWhiteSpace(fromEnvironment) ? DefaultUrl : fromEnvironment, UrlEnvironmentVariable);
    }

    /// <summary>Parses a server URL; a bare host:port gets http://.</summary>
    public static Uri Parse(string url, string what = "server URL")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(url);
        var text = url.Contains("://", StringComparison.Ordinal) ? url : "http://" + url;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"{what} '{url}' is not an http:// or https:// URL such as {DefaultUrl}", nameof(url));
        }

        return uri;
    }
}
