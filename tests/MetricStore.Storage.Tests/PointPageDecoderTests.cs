using MetricStore.Core;
using MetricStore.Storage.Segments;
using MetricStore.Tests;
using Parquet;
using Parquet.Schema;

namespace MetricStore.Storage.Tests;

/// <summary>
/// <see cref="PointPageDecoder"/> reads point files written by <see cref="SegmentWriter"/> exactly as
/// Parquet.Net does (bit for bit, and as written), hands other layouts back to Parquet.Net, and names
/// the segment when a page contradicts its footer.
/// </summary>
public sealed class PointPageDecoderTests
{
    public static TheoryData<int, bool> Shapes() => new()
    {
        { 1, true }, { 2, false }, { 127, true }, { 128, true }, { 129, false }, { 1000, true },
        { 4097, false }, { 100_000, true }, { SegmentWriter.MaxRowGroupRows + 3, true }, { 70_000, false },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public async Task Every_row_group_decodes_bit_for_bit_as_Parquet_Net_reads_it(int points, bool float32)
    {
        using var directory = new TempDirectory();
        var random = new Random(points * 2 + (float32 ? 1 : 0));
        var series = new List<(int, SeriesKey, SeriesColumns)>();
        for (var s = 0; s < 3; s++)
        {
            series.Add((s, SeriesKey.Create("key", RunId.New(), $"m{s}"), RandomSeries(random, s == 2 ? 1 + (points / 3) : points, float32, extremes: s == 1)));
        }

        var path = Path.Combine(directory.Path, "points.parquet");
        await SegmentFile.WriteAsync(path, series, float32, CompressionMethod.Zstd, CancellationToken.None);

        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        await using var reader = await ParquetReader.CreateAsync(stream);
        var layout = PointPageDecoder.LayoutOf(reader.Metadata!);
        Assert.NotNull(layout);
        Assert.Equal(float32, layout.Float32);
        var footer = FooterIndex.Of(reader.Metadata!);
        AssertIndexes(reader.Metadata!, footer);
        using var decoder = new PointPageDecoder();
        var groups = reader.RowGroupCount;
        Assert.Equal(points > SegmentWriter.MaxRowGroupRows ? 5 : 3, groups);
        // What each row group holds: the series in order, a million points at most per row group.
        var written = new List<SeriesColumns>();
        foreach (var (_, _, columns) in series)
        {
            for (var offset = 0; offset < columns.Count; offset += SegmentWriter.MaxRowGroupRows)
            {
                var n = Math.Min(SegmentWriter.MaxRowGroupRows, columns.Count - offset);
                var part = new SeriesColumns(n) { Count = n };
                Array.Copy(columns.Steps, offset, part.Steps, 0, n);
                Array.Copy(columns.Values, offset, part.Values, 0, n);
                Array.Copy(columns.Timestamps, offset, part.Timestamps, 0, n);
                written.Add(part);
            }
        }

        long compared = 0;
        for (var g = 0; g < groups; g++)
        {
            var expected = await SegmentFile.ReadAsync(path, g, float32, CancellationToken.None);
            AssertSame(written[g], expected, $"row group {g} as Parquet.Net reads it");
            var actual = decoder.Read(stream.SafeFileHandle, footer, layout, g);
            AssertSame(expected, actual, $"row group {g}");

            // And into columns given to fill, larger than the row group and dirty.
            var into = new SeriesColumns(expected.Count + 5);
            Array.Fill(into.Values, 42.0);
            Assert.Same(into, decoder.Read(stream.SafeFileHandle, footer, layout, g, into));
            AssertSame(expected, into, $"row group {g}, into given columns");
            compared += expected.Count;
        }

        Assert.Equal(points + points + 1 + (points / 3), compared);
    }

    [Fact]
    public async Task A_file_with_other_encodings_is_read_by_Parquet_Net_and_a_cache_miss_on_a_segment_by_the_decoder()
    {
        using var directory = new TempDirectory();
        var random = new Random(7);
        var points = RandomSeries(random, 5000, float32: true, extremes: false);

        // Same schema, Parquet.Net's default encodings (no hints): the decoder refuses its pages.
        var plain = Path.Combine(directory.Path, "plain.parquet");
        await WriteWithParquetNetAsync(plain, points);

        var ours = Path.Combine(directory.Path, "ours.parquet");
        await SegmentFile.WriteAsync(ours, [(0, SeriesKey.Create("key", RunId.New(), "m"), points)], float32: true, CompressionMethod.Zstd, CancellationToken.None);

        await using var readers = new SegmentReaders(4);
        AssertSame(points, await readers.ReadAsync(plain, 0, float32: true, CancellationToken.None), "plain file");
        Assert.Equal(0, readers.Decoded);
        AssertSame(points, await readers.ReadAsync(ours, 0, float32: true, CancellationToken.None), "point file");
        Assert.Equal(1, readers.Decoded);

        // The rollups' location is in the footer's key-value metadata; the readers keep none of it.
        await using (var stream = File.OpenRead(ours))
        await using (var reader = await ParquetReader.CreateAsync(stream))
        {
            Assert.NotEmpty(reader.CustomMetadata[SegmentWriter.RollupBlockKey]);
        }

        Assert.Equal(2, readers.Idle);
        Assert.Equal(1, readers.ParquetNetReaders); // the plain file's; ours keeps only its footer index
    }

    [Fact]
    public async Task A_file_footer_is_parsed_once_while_the_file_lives_even_when_no_reader_of_it_stays_open()
    {
        using var directory = new TempDirectory();
        var points = RandomSeries(new Random(11), 5000, float32: true, extremes: false);
        var path = Path.Combine(directory.Path, "ours.parquet");
        await SegmentFile.WriteAsync(path, [(0, SeriesKey.Create("key", RunId.New(), "m"), points)], float32: true, CompressionMethod.Zstd, CancellationToken.None);

        // No idle reader is kept, so every read opens the file again: one alone, then two rounds of
        // four at once, which need several handles open at a time.
        await using var readers = new SegmentReaders(0);
        AssertSame(points, await readers.ReadAsync(path, 0, float32: true, CancellationToken.None), "the first read");
        for (var round = 0; round < 2; round++)
        {
            var reads = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => readers.ReadAsync(path, 0, float32: true, CancellationToken.None)));
            foreach (var read in reads)
            {
                AssertSame(points, read, $"round {round}");
            }
        }

        Assert.Equal(9, readers.Decoded);
        Assert.Equal(0, readers.Idle);
        Assert.Equal(1, readers.Opened);
        Assert.Equal(1, readers.Footers);

        // A file compaction removed is forgotten, with its footer.
        await readers.ForgetAsync(new HashSet<string> { path });
        Assert.Equal(0, readers.Footers);
    }

    [Fact]
    public async Task Only_our_writers_row_groups_are_read_raw_and_a_copy_reads_back_as_the_original()
    {
        using var directory = new TempDirectory();
        var random = new Random(11);
        var points = RandomSeries(random, 70_000, float32: true, extremes: true);
        var other = RandomSeries(random, 3_000, float32: true, extremes: false);

        var plain = Path.Combine(directory.Path, "plain.parquet"); // Parquet.Net's writer and default encodings
        await WriteWithParquetNetAsync(plain, points);

        var ours = Path.Combine(directory.Path, "ours.parquet");
        await SegmentFile.WriteAsync(ours, [(3, SeriesKey.Create("key", RunId.New(), "m"), points)], float32: true, CompressionMethod.Zstd, CancellationToken.None);

        await using var readers = new SegmentReaders(4);
        var buffer = new byte[16];
        Assert.Null(await readers.ReadRawAsync(plain, 0, float32: true, zstd: true, buffer, CancellationToken.None));
        Assert.Null(await readers.ReadRawAsync(ours, 0, float32: false, zstd: true, buffer, CancellationToken.None)); // into a double file
        Assert.Null(await readers.ReadRawAsync(ours, 0, float32: true, zstd: false, buffer, CancellationToken.None)); // into an uncompressed file

        // The same bytes but another writer's name in the footer: not copied, whatever the layout.
        var renamed = Path.Combine(directory.Path, "renamed.parquet");
        var bytes = await File.ReadAllBytesAsync(ours);
        var name = System.Text.Encoding.ASCII.GetBytes(RawRowGroup.CreatedBy);
        bytes[bytes.AsSpan().LastIndexOf(name) + name.Length - 1] ^= 1;
        await File.WriteAllBytesAsync(renamed, bytes);
        AssertSame(points, await readers.ReadAsync(renamed, 0, float32: true, CancellationToken.None), "renamed file");
        Assert.Null(await readers.ReadRawAsync(renamed, 0, float32: true, zstd: true, buffer, CancellationToken.None));

        var raw = await readers.ReadRawAsync(ours, 0, float32: true, zstd: true, buffer, CancellationToken.None);
        Assert.NotNull(raw);
        Assert.Equal(70_000, raw.Rows);
        Assert.Equal((points.Timestamps.AsSpan(0, points.Count).ToArray().Min(), points.Timestamps.AsSpan(0, points.Count).ToArray().Max()), (raw.MinTimestamp, raw.MaxTimestamp));
        long rollupBytes;
        await using (var stream = File.OpenRead(ours))
        await using (var reader = await ParquetReader.CreateAsync(stream))
        {
            rollupBytes = long.Parse(reader.CustomMetadata[SegmentWriter.RollupBlockKey].Split(':')[1], System.Globalization.CultureInfo.InvariantCulture);
        }

        Assert.Equal(raw.Length, new FileInfo(ours).Length - 4 - rollupBytes - FooterLength(ours) - 8); // the whole row group: everything but magic, rollups and footer

        // Copied after another series' row group, at another offset: both read back as written.
        var copy = Path.Combine(directory.Path, "copy.parquet");
        await using (var writer = await SegmentWriter.CreateAsync(copy, float32: true, CompressionMethod.Zstd, CancellationToken.None))
        {
            await writer.AddAsync(1, other, CancellationToken.None);
            var rollup = Query.Rollup.Build(points.Steps, points.Values, points.Timestamps, 0, points.Count, Query.Rollup.Coarse);
            await writer.AddRawAsync(3, points.Steps[0], points.Steps[points.Count - 1], rollup, raw, CancellationToken.None);
            await writer.CompleteAsync(CancellationToken.None);
        }

        AssertSame(other, await SegmentFile.ReadAsync(copy, 0, float32: true, CancellationToken.None), "the series before the copy, Parquet.Net");
        AssertSame(points, await SegmentFile.ReadAsync(copy, 1, float32: true, CancellationToken.None), "the copy, Parquet.Net");
        AssertSame(points, await readers.ReadAsync(copy, 1, float32: true, CancellationToken.None), "the copy, our decoder");
        var copiedRollups = await SegmentFile.ReadRollupsAsync(copy, CancellationToken.None);
        Assert.Equal(points.Count, copiedRollups[1].Count);
    }

    /// <summary>A point file of one series with our schema, written by Parquet.Net with its default encodings.</summary>
    private static async Task WriteWithParquetNetAsync(string path, SeriesColumns points)
    {
        var schema = new ParquetSchema(new DataField<int>("series_id"), new DataField<long>("step"), new DataField<float>("value"), new DataField<long>("timestamp_ms"));
        await using var file = File.Create(path);
        await using var writer = await ParquetWriter.CreateAsync(schema, file, new ParquetOptions { CompressionMethod = CompressionMethod.Zstd });
        using var group = writer.CreateRowGroup();
        await group.WriteAsync<int>(schema.DataFields[0], new int[points.Count]);
        await group.WriteAsync<long>(schema.DataFields[1], points.Steps.AsMemory(0, points.Count));
        await group.WriteAsync<float>(schema.DataFields[2], points.Values.Take(points.Count).Select(v => (float)v).ToArray());
        await group.WriteAsync<long>(schema.DataFields[3], points.Timestamps.AsMemory(0, points.Count));
    }

    private static int FooterLength(string path)
    {
        using var stream = File.OpenRead(path);
        var tail = new byte[8];
        stream.Seek(-8, SeekOrigin.End);
        stream.ReadExactly(tail);
        return BitConverter.ToInt32(tail);
    }

    [Fact]
    public async Task A_page_header_that_contradicts_its_chunk_is_an_error_naming_the_segment_and_row_group()
    {
        using var directory = new TempDirectory();
        var points = RandomSeries(new Random(3), 10_000, float32: true, extremes: false);
        var path = Path.Combine(directory.Path, "points.parquet");
        await SegmentFile.WriteAsync(path, [(0, SeriesKey.Create("key", RunId.New(), "m"), points)], float32: true, CompressionMethod.Zstd, CancellationToken.None);
        long stepPage;
        await using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        await using (var reader = await ParquetReader.CreateAsync(stream))
        {
            var layout = PointPageDecoder.LayoutOf(reader.Metadata!)!;
            stepPage = reader.Metadata!.RowGroups[0].Columns[layout.Step].MetaData!.DataPageOffset;
        }

        // The page header starts with its type (field 1, bytes 0x15 0x00) and then its uncompressed
        // size (field 2: 0x15 and a zigzag varint). Rewrite that varint in place, same length, to an
        // odd zigzag value: a negative size.
        var damaged = await File.ReadAllBytesAsync(path);
        var at = (int)stepPage;
        Assert.Equal([0x15, 0x00, 0x15], damaged[at..(at + 3)]);
        var end = at + 3;
        while ((damaged[end] & 0x80) != 0)
        {
            damaged[end++] = 0xff;
        }

        damaged[end] = 0x07;
        await File.WriteAllBytesAsync(path, damaged);

        await using var readers = new SegmentReaders(4);
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => readers.ReadAsync(path, 0, float32: true, CancellationToken.None));
        Assert.Contains(path, error.Message);
        Assert.Contains("row group 0", error.Message);
        Assert.Equal(0, readers.Idle); // a reader whose read failed is not kept
    }

    [Theory]
    [InlineData(new byte[] { 0x80, 0x01, 0x80, 0x02, 0x03, 0x00 }, "miniblocks")] // 128 values in 256 miniblocks
    [InlineData(new byte[] { 0x40, 0x01, 0x03, 0x00 }, "miniblocks")]             // a block of 64 values
    [InlineData(new byte[] { 0x80, 0x01, 0x04, 0x05, 0x00 }, "holds 5 values")]   // the page says 3 values
    [InlineData(new byte[] { 0x80, 0x01, 0x04, 0x03, 0x00, 0x02 }, "ends inside")] // the block's widths are missing
    [InlineData(new byte[] { 0x80, 0x01, 0x04, 0x03 }, "past the end")]           // no first value
    public void A_delta_page_that_breaks_the_format_is_an_error_not_a_hang_or_a_wrong_read(byte[] page, string message)
    {
        var padded = page.Concat(new byte[16]).ToArray();
        var error = Assert.Throws<InvalidDataException>(() => PointPageDecoder.DecodeDeltaBinaryPacked(padded, page.Length, new long[3]));
        Assert.Contains(message, error.Message);
    }

    private static SeriesColumns RandomSeries(Random random, int n, bool float32, bool extremes)
    {
        var columns = new SeriesColumns(n) { Count = n };
        var step = extremes ? long.MinValue + random.Next(1000) : random.Next(1000);
        var timestamp = 1_700_000_000_000L;
        for (var i = 0; i < n; i++)
        {
            columns.Steps[i] = step;
            step += extremes && i % 97 == 0 ? (long)(random.NextDouble() * (1L << 60)) : 1 + random.Next(i % 5 == 0 ? 100_000 : 3);
            timestamp += extremes && i % 61 == 0 ? (random.Next(2) == 0 ? long.MaxValue / 3 : long.MinValue / 3) : random.Next(-50, 1000);
            columns.Timestamps[i] = extremes && i % 89 == 0 ? (random.Next(2) == 0 ? long.MaxValue : long.MinValue) : timestamp;
            double value = (i % 211) switch
            {
                0 when extremes => double.NaN,
                1 when extremes => double.PositiveInfinity,
                2 when extremes => double.NegativeInfinity,
                3 when extremes => -0.0,
                4 when extremes => float32 ? float.Epsilon : double.Epsilon,
                _ => (2.5 * Math.Exp(-i / 2e4)) + (0.02 * random.NextDouble()),
            };
            columns.Values[i] = float32 ? (float)value : value;
        }

        return columns;
    }

    private static void AssertSame(SeriesColumns expected, SeriesColumns actual, string what)
    {
        Assert.True(expected.Count == actual.Count, $"{what}: {actual.Count} points, expected {expected.Count}");
        for (var i = 0; i < expected.Count; i++)
        {
            if (expected.Steps[i] != actual.Steps[i] || expected.Timestamps[i] != actual.Timestamps[i]
                || BitConverter.DoubleToInt64Bits(expected.Values[i]) != BitConverter.DoubleToInt64Bits(actual.Values[i]))
            {
                Assert.Fail($"{what}, point {i}: ({actual.Steps[i]}, {actual.Values[i]}, {actual.Timestamps[i]}), expected ({expected.Steps[i]}, {expected.Values[i]}, {expected.Timestamps[i]})");
            }
        }
    }

    /// <summary>The footer index says what the parsed footer says, for every row group and column chunk.</summary>
    private static void AssertIndexes(Parquet.Meta.FileMetaData metadata, FooterIndex footer)
    {
        Assert.Equal(48, System.Runtime.CompilerServices.Unsafe.SizeOf<ColumnChunkInfo>()); // what FooterIndex's remarks say it keeps
        Assert.Equal(metadata.CreatedBy, footer.CreatedBy);
        Assert.Equal(metadata.Schema.Count, footer.Schema.Count);
        Assert.Equal(metadata.RowGroups.Count, footer.RowGroups);
        for (var g = 0; g < footer.RowGroups; g++)
        {
            var group = metadata.RowGroups[g];
            Assert.Equal(group.NumRows, footer.Rows(g));
            Assert.Equal(group.Columns.Count, footer.Columns(g));
            for (var c = 0; c < group.Columns.Count; c++)
            {
                var meta = group.Columns[c].MetaData!;
                var chunk = footer.Chunk(g, c);
                Assert.Equal(
                    (meta.Codec, meta.DictionaryPageOffset is not null, meta.NumValues, meta.DataPageOffset, meta.TotalCompressedSize, meta.TotalUncompressedSize),
                    (chunk.Codec, chunk.HasDictionaryPage, chunk.NumValues, chunk.DataPageOffset, chunk.TotalCompressedSize, chunk.TotalUncompressedSize));
                Assert.All(Enum.GetValues<Parquet.Meta.Encoding>(), e => Assert.Equal(meta.Encodings.Contains(e), chunk.HasEncoding(e)));
            }

            var statistics = group.Columns[FooterIndex.TimestampColumn].MetaData!.Statistics!;
            Assert.True(footer.TryTimestamps(g, out var min, out var max));
            Assert.Equal((BitConverter.ToInt64(statistics.MinValue), BitConverter.ToInt64(statistics.MaxValue)), (min, max));
        }
    }
}
