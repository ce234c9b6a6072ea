using System.Buffers.Text;
using System.Globalization;
using System.Text;
using MetricStore.Core;

namespace MetricStore.Tracking;

/// <summary>
/// Opaque keyset page tokens: base64url of "kind|a|b", the sort key of the last item returned.
/// Keyset (not offset) pagination keeps pages stable and O(page) while rows are inserted.
/// </summary>
internal static class PageToken
{
    public static string Encode(string kind, long a, string b) =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{kind}|{a}|{b}")));

    public static (long A, string B)? Decode(string field, string? token, string kind)
    {
        if (string.IsNullOrEmpty(token))
        {
            return null;
        }

        try
        {
            var text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(token));
            var parts = text.Split('|', 3);
            if (parts.Length == 3 && parts[0] == kind && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var a))
            {
                return (a, parts[2]);
            }
        }
        catch (FormatException)
        {
        }

        MetricStoreException.InvalidArgument($"{field} {Validate.Quote(token)} is not a page token from a previous {kind} listing");
        return null;
    }
}
