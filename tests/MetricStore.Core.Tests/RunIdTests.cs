namespace MetricStore.Core.Tests;

public sealed class RunIdTests
{
    [Fact]
    public void New_ids_are_well_formed_unique_and_sort_by_creation()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => RunId.New()).ToList();
        Assert.All(ids, id => Assert.True(RunId.IsWellFormed(id), id));
        Assert.Equal(ids.Count, ids.Distinct(StringComparer.Ordinal).Count());

        // UUIDv7 orders by millisecond; ids from different milliseconds sort by time.
        var first = RunId.New();
        Thread.Sleep(5);
        var later = RunId.New();
        Assert.True(string.CompareOrdinal(first, later) < 0, $"{first} should sort before {later}");
    }

    [Theory]
    [InlineData("")]
    [InlineData("0123456789abcdef0123456789abcde")]
    [InlineData("0123456789ABCDEF0123456789ABCDEF")]
    [InlineData("0123456789abcdef0123456789abcdeg")]
    [InlineData("../../../../etc/passwd/aaaaaaaaa")]
    public void Malformed_ids_are_refused(string id)
    {
        Assert.False(RunId.IsWellFormed(id));
        var e = Assert.Throws<MetricStoreException>(() => RunId.Check("run_id", id));
        Assert.Contains("run_id", e.Message, StringComparison.Ordinal);
    }
}
