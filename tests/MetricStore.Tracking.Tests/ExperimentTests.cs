using CsCheck;
using MetricStore.Core;

namespace MetricStore.Tracking.Tests;

public sealed class ExperimentTests : IDisposable
{
    private readonly StoreHarness _h = new();

    private TrackingStore Store => _h.Store;

    public void Dispose() => _h.Dispose();

    [Fact]
    public void Created_experiment_is_found_by_id_and_by_name()
    {
        var created = Store.CreateExperiment("mnist", "digits", new Dictionary<string, string> { ["team"] = "vision" });
        Assert.True(created.Id > 0);
        Assert.Equal(1_700_000_000_000, created.CreatedTimeMs);
        var byId = Store.GetExperiment(created.Id);
        var byName = Store.GetExperimentByName("mnist");
        Assert.Equal(created.Id, byName.Id);
        Assert.Equal("digits", byId.Description);
        Assert.Equal("vision", byName.Tags["team"]);
    }

    [Fact]
    public void Creating_an_experiment_whose_name_exists_fails_and_says_it_exists()
    {
        var first = Store.CreateExperiment("dup", "original");
        var e = Assert.Throws<MetricStoreException>(() => Store.CreateExperiment("dup", "second"));
        Assert.Equal(ErrorCode.AlreadyExists, e.Code);
        Assert.Contains("'dup' already exists", e.Message, StringComparison.Ordinal);
        Assert.Equal("original", Store.GetExperiment(first.Id).Description);
        Assert.Single(Store.ListExperiments().Items);
    }

    [Fact]
    public void Concurrent_creates_of_one_name_yield_exactly_one_experiment()
    {
        var outcomes = new ErrorCode?[16];
        Parallel.For(0, outcomes.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            try
            {
                Store.CreateExperiment("race");
            }
            catch (MetricStoreException e)
            {
                outcomes[i] = e.Code;
            }
        });
        Assert.Equal(1, outcomes.Count(o => o is null));
        Assert.All(outcomes.Where(o => o is not null), o => Assert.Equal(ErrorCode.AlreadyExists, o));
        Assert.Single(Store.ListExperiments().Items);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("tab\there")]
    public void Bad_names_are_refused_and_nothing_is_stored(string name)
    {
        var e = Assert.Throws<MetricStoreException>(() => Store.CreateExperiment(name));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("name", e.Message, StringComparison.Ordinal);
        Assert.Empty(Store.ListExperiments().Items);
    }

    [Fact]
    public void Name_over_the_limit_is_refused_and_at_the_limit_accepted()
    {
        Assert.Throws<MetricStoreException>(() => Store.CreateExperiment(new string('n', Limits.MaxNameLength + 1)));
        Store.CreateExperiment(new string('n', Limits.MaxNameLength));
        Assert.Single(Store.ListExperiments().Items);
    }

    [Fact]
    public void Description_over_the_limit_is_refused()
    {
        var e = Assert.Throws<MetricStoreException>(() => Store.CreateExperiment("d", new string('x', Limits.MaxDescriptionLength + 1)));
        Assert.Contains("description", e.Message, StringComparison.Ordinal);
        Assert.Empty(Store.ListExperiments().Items);
    }

    [Fact]
    public void Unknown_experiment_is_not_found()
    {
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<MetricStoreException>(() => Store.GetExperiment(42)).Code);
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<MetricStoreException>(() => Store.GetExperimentByName("nope")).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<MetricStoreException>(() => Store.GetExperiment(0)).Code);
    }

    [Fact]
    public void Experiment_tags_are_set_and_overwritten()
    {
        var e = Store.CreateExperiment("tagged", tags: new Dictionary<string, string> { ["a"] = "1" });
        var updated = Store.SetExperimentTags(e.Id, new Dictionary<string, string> { ["a"] = "2", ["b"] = "3" });
        Assert.Equal("2", updated.Tags["a"]);
        Assert.Equal("3", updated.Tags["b"]);
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<MetricStoreException>(() => Store.SetExperimentTags(999, updated.Tags)).Code);
    }

    [Fact]
    public void Pages_of_experiments_list_each_exactly_once_in_creation_order()
    {
        // Property: for any count and page size, following next_page_token lists every experiment once, in order.
        Gen.Select(Gen.Int[0, 23], Gen.Int[1, 7]).Sample((count, pageSize) =>
        {
            using var h = new StoreHarness();
            var created = Enumerable.Range(0, count).Select(i => h.Store.CreateExperiment($"e{i}").Id).ToList();
            var listed = new List<long>();
            string? token = null;
            var pages = 0;
            do
            {
                var page = h.Store.ListExperiments(pageSize, token);
                Assert.True(page.Items.Count <= pageSize);
                listed.AddRange(page.Items.Select(e => e.Id));
                token = page.NextPageToken;
                Assert.True(++pages <= count + 1, "pagination does not terminate");
            }
            while (token is not null);
            Assert.Equal(created, listed);
        }, iter: 25);
    }

    [Theory]
    [InlineData("not-base64!!")]
    [InlineData("cnVuc3wxfGE")]
    public void A_page_token_that_is_not_from_this_listing_is_refused(string token)
    {
        var e = Assert.Throws<MetricStoreException>(() => Store.ListExperiments(10, token));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("page_token", e.Message, StringComparison.Ordinal);
    }
}
