using System.CommandLine;
using MetricStore.Client;

namespace MetricStore.Cli;

/// <summary>What every command shares: the writers and the global options.</summary>
internal sealed class CliContext(TextWriter output, TextWriter error)
{
    public TextWriter Output { get; } = output;

    public TextWriter Error { get; } = error;

    public Option<string?> ServerOption { get; } = new("--server")
    {
        Description = $"gRPC address of the server (default: ${MetricStoreClientOptions.UrlEnvironmentVariable}, else {MetricStoreClientOptions.DefaultUrl})",
        Recursive = true,
    };

    public Option<string?> TokenOption { get; } = new("--token")
    {
        Description = $"API token for a server started with --auth (default: ${MetricStoreClientOptions.TokenEnvironmentVariable})",
        Recursive = true,
    };

    public Option<string?> UserOption { get; } = new("--user")
    {
        Description = "Who you are to a server without --auth (unverified, for the audit trail and approvals; default: $METRICSTORE_USER)",
        Recursive = true,
    };

    public Option<bool> JsonOption { get; } = new("--json")
    {
        Description = "Print JSON for machines instead of tables",
        Recursive = true,
    };

    public bool Json(ParseResult parse) => parse.GetValue(JsonOption);

    public string ServerUrlFor(ParseResult parse)
    {
        var explicitUrl = parse.GetValue(ServerOption);
        return string.IsNullOrWhiteSpace(explicitUrl) ? MetricStoreClientOptions.ResolveDefaultAddress().ToString() : explicitUrl;
    }

    public MetricStoreClient Connect(ParseResult parse)
    {
        var explicitUrl = parse.GetValue(ServerOption);
        Uri address;
        try
        {
            address = string.IsNullOrWhiteSpace(explicitUrl)
                ? MetricStoreClientOptions.ResolveDefaultAddress()
                : MetricStoreClientOptions.Parse(explicitUrl, "--server");
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }

        var options = new MetricStoreClientOptions { Address = address, Capture = CaptureOptions.None };
        if (parse.GetValue(TokenOption) is { Length: > 0 } token)
        {
            options = options with { Token = token };
        }

        if (parse.GetValue(UserOption) is { Length: > 0 } user)
        {
            options = options with { User = user };
        }

        return new MetricStoreClient(options);
    }
}
