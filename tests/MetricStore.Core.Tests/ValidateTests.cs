namespace MetricStore.Core.Tests;

public sealed class ValidateTests
{
    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(null)]
    public void Empty_or_blank_name_is_refused_naming_the_field(string? value)
    {
        var e = Assert.Throws<MetricStoreException>(() => Validate.Name("name", value, 10));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.StartsWith("name is required", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Over_long_name_is_refused_with_length_and_limit()
    {
        var e = Assert.Throws<MetricStoreException>(() => Validate.Name("experiment name", new string('x', 11), 10));
        Assert.Contains("11 characters", e.Message, StringComparison.Ordinal);
        Assert.Contains("limit is 10", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Name_at_the_limit_is_accepted() => Validate.Name("name", new string('x', 10), 10);

    [Theory]
    [InlineData("a\nb", "U+000A")]
    [InlineData("a\0b", "U+0000")]
    [InlineData("\u007f", "U+007F")]
    public void Control_characters_in_names_are_refused_with_their_code_point(string value, string codePoint)
    {
        var e = Assert.Throws<MetricStoreException>(() => Validate.Name("key", value, 10));
        Assert.Contains(codePoint, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Text_allows_newlines_but_not_nul()
    {
        Validate.Text("note", "line 1\nline 2", 100);
        var e = Assert.Throws<MetricStoreException>(() => Validate.Text("note", "a\0", 100));
        Assert.Contains("NUL", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, Limits.DefaultPageSize)]
    [InlineData(1, 1)]
    [InlineData(Limits.MaxPageSize, Limits.MaxPageSize)]
    public void Page_size_zero_means_default(int given, int expected) => Assert.Equal(expected, Validate.PageSize("page_size", given));

    [Theory]
    [InlineData(-1)]
    [InlineData(Limits.MaxPageSize + 1)]
    public void Page_size_out_of_range_is_refused(int given)
    {
        var e = Assert.Throws<MetricStoreException>(() => Validate.PageSize("page_size", given));
        Assert.Contains(given.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Quote_cuts_long_values()
    {
        var quoted = Validate.Quote(new string('y', 500));
        Assert.True(quoted.Length < 80, quoted);
        Assert.EndsWith("…'", quoted, StringComparison.Ordinal);
    }
}
