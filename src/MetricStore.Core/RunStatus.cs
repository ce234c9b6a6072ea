namespace MetricStore.Core;

/// <summary>The life of a run: Running, then exactly one ended status, never back.</summary>
public enum RunStatus
{
    Running = 1,
    Finished = 2,
    Failed = 3,
    Killed = 4,
}

public static class RunStatusExtensions
{
    public static bool IsEnded(this RunStatus status) => status is RunStatus.Finished or RunStatus.Failed or RunStatus.Killed;

    public static string ToWireName(this RunStatus status) => status switch
    {
        RunStatus.Running => "RUNNING",
        RunStatus.Finished => "FINISHED",
        RunStatus.Failed => "FAILED",
        RunStatus.Killed => "KILLED",
        _ => ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
