using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using MetricStore.Core;
using MetricStore.Tracking.Registry;

namespace MetricStore.Tracking;

/// <summary>Users and their API tokens. Only a token's SHA-256 is stored; the token is shown once.</summary>
public sealed partial class TrackingStore
{
    /// <summary>Every token starts with this, so a leaked one is easy to recognise (secret scanners).</summary>
    public const string TokenPrefix = "mst_";

    /// <summary>Creates a user and returns its token (32 random bytes); AlreadyExists when the name is taken.</summary>
    public (UserInfo User, string Token) AddUser(string name, Role role)
    {
        Validate.Name("name", name, Limits.MaxNameLength);
        if (!Enum.IsDefined(role))
        {
            MetricStoreException.InvalidArgument($"role {(int)role} is not reader, writer, approver or admin");
        }

        var token = TokenPrefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        var user = Write((connection, tx) =>
        {
            using (var exists = Command(connection, tx, "SELECT 1 FROM users WHERE name = $n"))
            {
                exists.Parameters.AddWithValue("$n", name);
                if (exists.ExecuteScalar() is not null)
                {
                    MetricStoreException.Throw(ErrorCode.AlreadyExists, $"user '{name}' already exists");
                }
            }

            var created = new UserInfo(name, role, NowMs());
            using var insert = Command(connection, tx, "INSERT INTO users (name, role, token_hash, created_ms) VALUES ($n, $r, $h, $t)");
            insert.Parameters.AddWithValue("$n", name);
            insert.Parameters.AddWithValue("$r", (int)role);
            insert.Parameters.AddWithValue("$h", HashToken(token));
            insert.Parameters.AddWithValue("$t", created.CreatedTimeMs);
            insert.ExecuteNonQuery();
            return created;
        });
        return (user, token);
    }

    /// <summary>The user a token belongs to, or null for an unknown token.</summary>
    public Actor? Authenticate(string token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return null;
        }

        var hash = HashToken(token);
        return Read(connection =>
        {
            using var select = Command(connection, null, "SELECT name, role FROM users WHERE token_hash = $h");
            select.Parameters.AddWithValue("$h", hash);
            using var reader = select.ExecuteReader();
            return reader.Read() ? new Actor(reader.GetString(0), (Role)reader.GetInt32(1)) : null;
        });
    }

    public IReadOnlyList<UserInfo> ListUsers() => Read(connection =>
    {
        using var select = Command(connection, null, "SELECT name, role, created_ms FROM users ORDER BY name");
        using var reader = select.ExecuteReader();
        var users = new List<UserInfo>();
        while (reader.Read())
        {
            users.Add(new UserInfo(reader.GetString(0), (Role)reader.GetInt32(1), reader.GetInt64(2)));
        }

        return users;
    });

    /// <summary>Tokens carry 256 random bits, so a fast hash is enough: no password stretching is needed.</summary>
    private static string HashToken(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
