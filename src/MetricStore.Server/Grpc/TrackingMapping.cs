using MetricStore.Core;
using MetricStore.Tracking;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>Maps tracking records to and from their wire messages. No logic beyond shape.</summary>
internal static class TrackingMapping
{
    public static V1.Experiment ToWire(Experiment e)
    {
        var wire = new V1.Experiment
        {
            ExperimentId = e.Id,
            Name = e.Name,
            Description = e.Description,
            CreatedTimeMs = e.CreatedTimeMs,
        };
        AddAll(wire.Tags, e.Tags);
        return wire;
    }

    public static V1.Run ToWire(Run r)
    {
        var wire = new V1.Run
        {
            RunId = r.Id,
            ExperimentId = r.ExperimentId,
            ExperimentName = r.ExperimentName,
            Name = r.Name,
            Status = ToWire(r.Status),
            StartTimeMs = r.StartTimeMs,
            EndTimeMs = r.EndTimeMs ?? 0,
            ParentRunId = r.ParentRunId ?? "",
            Note = ToWire(r.Note),
            Source = new V1.SourceInfo
            {
                GitCommit = r.Source.GitCommit,
                GitBranch = r.Source.GitBranch,
                GitRemote = r.Source.GitRemote,
                GitDirty = r.Source.GitDirty,
                CommandLine = r.Source.CommandLine,
                Host = r.Source.Host,
                Os = r.Source.Os,
                Runtime = r.Source.Runtime,
                User = r.Source.User,
            },
        };
        AddAll(wire.Params, r.Params);
        AddAll(wire.Tags, r.Tags);
        return wire;
    }

    public static V1.Note ToWire(Note n) => new() { Hypothesis = n.Hypothesis, Outcome = n.Outcome };

    public static V1.RunStatus ToWire(RunStatus s) => s switch
    {
        RunStatus.Running => V1.RunStatus.Running,
        RunStatus.Finished => V1.RunStatus.Finished,
        RunStatus.Failed => V1.RunStatus.Failed,
        RunStatus.Killed => V1.RunStatus.Killed,
        _ => V1.RunStatus.Unspecified,
    };

    public static RunStatus FromWire(V1.RunStatus s) => s switch
    {
        V1.RunStatus.Running => RunStatus.Running,
        V1.RunStatus.Finished => RunStatus.Finished,
        V1.RunStatus.Failed => RunStatus.Failed,
        V1.RunStatus.Killed => RunStatus.Killed,
        _ => throw new MetricStoreException(ErrorCode.InvalidArgument, $"status {s} is not a run status; use RUN_STATUS_FINISHED, RUN_STATUS_FAILED or RUN_STATUS_KILLED"),
    };

    public static SourceInfo? FromWire(V1.SourceInfo? s) => s is null
        ? null
        : new SourceInfo
        {
            GitCommit = s.GitCommit,
            GitBranch = s.GitBranch,
            GitRemote = s.GitRemote,
            GitDirty = s.GitDirty,
            CommandLine = s.CommandLine,
            Host = s.Host,
            Os = s.Os,
            Runtime = s.Runtime,
            User = s.User,
        };

    private static void AddAll(Google.Protobuf.Collections.MapField<string, string> target, IReadOnlyDictionary<string, string> source)
    {
        foreach (var (key, value) in source)
        {
            target[key] = value;
        }
    }
}
