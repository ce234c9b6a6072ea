namespace MetricStore.Core;

/// <summary>
/// Run ids are UUIDv7 in 32 lowercase hex characters: unique without coordination, and sorted by
/// creation time, so an index on them is append-mostly.
/// </summary>
public static class RunId
{
    public const int Length = 32;

    public static string New() => Guid.CreateVersion7().ToString("N");

    public static bool IsWellFormed(string? value)
    {
        if (value is null || value.Length != Length)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Throws InvalidArgument naming the field when the id is not 32 lowercase hex characters.</summary>
    public static void Check(string field, string? value)
    {
        if (!IsWellFormed(value))
        {
            MetricStoreException.InvalidArgument($"{field} {Validate.Quote(value)} is not a run id: expected 32 lowercase hexadecimal characters");
        }
    }
}
