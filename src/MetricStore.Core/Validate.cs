using System.Globalization;

namespace MetricStore.Core;

/// <summary>
/// Input checks shared by every edge. Each throws <see cref="MetricStoreException"/> with
/// <see cref="ErrorCode.InvalidArgument"/> and a message naming the field and the value.
/// </summary>
public static class Validate
{
    /// <summary>A name or key: 1..max characters, not only whitespace, no control characters.</summary>
    public static void Name(string field, string? value, int maxLength)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            MetricStoreException.InvalidArgument($"{field} is required and must not be empty or only whitespace (got {Quote(value)})");
        }

        if (value.Length > maxLength)
        {
            MetricStoreException.InvalidArgument($"{field} is {value.Length} characters long; the limit is {maxLength} (value starts {Quote(value)})");
        }

        for (var i = 0; i < value.Length; i++)
        {
            if (char.IsControl(value[i]))
            {
                MetricStoreException.InvalidArgument(
                    $"{field} contains control character U+{(int)value[i]:X4} at position {i}; names and keys must be printable (value {Quote(value)})");
            }
        }
    }

    /// <summary>A free-form text value: at most max characters, NUL not allowed.</summary>
    public static void Text(string field, string? value, int maxLength)
    {
        if (value is null)
        {
            return;
        }

        if (value.Length > maxLength)
        {
            MetricStoreException.InvalidArgument($"{field} is {value.Length} characters long; the limit is {maxLength} (value starts {Quote(value)})");
        }

        if (value.Contains('\0', StringComparison.Ordinal))
        {
            MetricStoreException.InvalidArgument($"{field} contains a NUL character at position {value.IndexOf('\0', StringComparison.Ordinal)}");
        }
    }

    public static void Count(string field, int count, int max)
    {
        if (count > max)
        {
            MetricStoreException.InvalidArgument($"{field} has {count} entries; the limit is {max} per request");
        }
    }

    /// <summary>Page size: 0 means the default; otherwise 1..<see cref="Limits.MaxPageSize"/>.</summary>
    public static int PageSize(string field, int pageSize)
    {
        if (pageSize == 0)
        {
            return Limits.DefaultPageSize;
        }

        if (pageSize < 0 || pageSize > Limits.MaxPageSize)
        {
            MetricStoreException.InvalidArgument($"{field} is {pageSize.ToString(CultureInfo.InvariantCulture)}; it must be between 1 and {Limits.MaxPageSize} (or 0 for the default of {Limits.DefaultPageSize})");
        }

        return pageSize;
    }

    /// <summary>Quotes a value for an error message, cut to 64 characters so messages stay readable.</summary>
    public static string Quote(string? value)
    {
        if (value is null)
        {
            return "null";
        }

        const int Shown = 64;
        var shown = value.Length <= Shown ? value : string.Concat(value.AsSpan(0, Shown), "…");
        return "'" + shown.Replace("\0", "\\0", StringComparison.Ordinal) + "'";
    }
}
