using System.Runtime.InteropServices;
using MetricStore.Protocol.V1;

namespace MetricStore.Client;

/// <summary>
/// What the client records about the process that starts a run. Never throws: a field that
/// cannot be read stays empty. (Git state and package lists arrive with automatic capture.)
/// </summary>
internal static class SourceCapture
{
    public static SourceInfo Capture()
    {
        return new SourceInfo
        {
            CommandLine = Try(() => string.Join(' ', Environment.GetCommandLineArgs())),
            Host = Try(() => Environment.MachineName),
            Os = Try(() => RuntimeInformation.OSDescription),
            Runtime = Try(() => RuntimeInformation.FrameworkDescription),
            User = Try(() => Environment.UserName),
        };
    }

    private static string Try(Func<string> read)
    {
        try
        {
            return read() ?? "";
        }
        catch (Exception e) when (e is InvalidOperationException or PlatformNotSupportedException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
