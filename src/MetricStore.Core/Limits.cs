namespace MetricStore.Core;

/// <summary>
/// Sizes the server enforces on tracking data. Lengths count UTF-16 code units (string.Length).
/// Documented in proto/metricstore/v1/tracking.proto and docs/api.md; change all three together.
/// </summary>
public static class Limits
{
    public const int MaxNameLength = 256;
    public const int MaxKeyLength = 250;
    public const int MaxParamValueLength = 6000;
    public const int MaxTagValueLength = 8000;
    public const int MaxDescriptionLength = 65536;
    public const int MaxNoteLength = 1 << 20;
    public const int MaxItemsPerRequest = 500;
    public const int MaxSourceFieldLength = 8192;
    public const int MaxCommandLineLength = 65536;
    public const int DefaultPageSize = 100;
    public const int MaxPageSize = 1000;
}
