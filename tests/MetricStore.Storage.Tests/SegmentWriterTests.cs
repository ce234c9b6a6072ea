using System.Globalization;
using DuckDB.NET.Data;
using MetricStore.Core;
using MetricStore.Storage.Query;
using MetricStore.Storage.Segments;
using MetricStore.Tests;
using Parquet;
using Parquet.Schema;

namespace MetricStore.Storage.Tests;

/// <summary>
/// Point files from our own page encoder and footer writer (<see cref="SegmentWriter"/>,
/// <see cref="PointPageEncoder"/>) are Parquet that Parquet.Net and DuckDB read back exactly, with
/// the statistics DuckDB prunes row groups by.
/// </summary>
public sealed class SegmentWriterTests
{
    public static TheoryData<int> Lengths() => [1, 2, 31, 32, 33, 127, 128, 129, 130, 161, 255, 256, 257, 1000, 4097];

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Delta_binary_packed_round_trips_any_int64_sequence(int n)
    {
        var random = new Random(n);
        var sequences = new[]
        {
            Enumerable.Range(0, n).Select(i => (long)i).ToArray(), // steps: every delta 1, width 0
            Enumerable.Range(0, n).Select(_ => random.NextInt64(long.MinValue, long.MaxValue)).ToArray(), // 64-bit wide deltas that wrap
            Enumerable.Range(0, n).Select(i => i % 3 == 0 ? long.MinValue : long.MaxValue).ToArray(),
            Enumerable.Range(0, n).Select(i => 1_700_000_000_000L + (i * 1000L) + random.Next(0, 50)).ToArray(), // timestamps
            Enumerable.Range(0, n).Select(i => (long)random.Next(-5, 5) << random.Next(0, 60)).ToArray(), // widths that change per miniblock
        };
        using var encoder = new PointPageEncoder();
        foreach (var values in sequences)
        {
            var page = new byte[PointPageEncoder.MaxDeltaBinaryPackedBytes(n) + 16];
            page.AsSpan().Fill(0xA5); // a reused page buffer: every byte of the encoding must be written
            var length = encoder.EncodeDeltaBinaryPacked([values], page);
            var decoded = new long[n];
            PointPageDecoder.DecodeDeltaBinaryPacked(page, length, decoded);
            Assert.Equal(values, decoded);
        }
    }

    [Fact]
    public async Task Rollups_lie_in_the_body_outside_the_footer_and_files_with_rollups_in_the_footer_still_read()
    {
        using var directory = new TempDirectory();
        var path = Path.Combine(directory.Path, "points.parquet");
        var points = new SeriesColumns(3 * SegmentWriter.MaxRowGroupRows);
        for (var i = 0; i < points.Steps.Length; i++)
        {
            points.Steps[i] = i;
            points.Values[i] = (float)Math.Sin(i * 0.001);
            points.Timestamps[i] = 1_700_000_000_000L + i;
        }

        points.Count = points.Steps.Length;
        await SegmentFile.WriteAsync(path, [(7, SeriesKey.Create("key", RunId.New(), "m"), points)], float32: true, CompressionMethod.Zstd, CancellationToken.None);

        // The footer holds where the rollups are, not the rollups: it stays small however many points.
        var bytes = await File.ReadAllBytesAsync(path);
        var footerLength = BitConverter.ToInt32(bytes, bytes.Length - 8);
        string block;
        await using (var stream = File.OpenRead(path))
        await using (var reader = await ParquetReader.CreateAsync(stream))
        {
            Assert.False(reader.CustomMetadata.ContainsKey(SegmentWriter.RollupMetadataKey));
            block = reader.CustomMetadata[SegmentWriter.RollupBlockKey];
        }

        var rollupLength = int.Parse(block.Split(':')[1], CultureInfo.InvariantCulture);
        Assert.True(footerLength < 4096 && rollupLength > footerLength, $"footer {footerLength} bytes, rollups {rollupLength}");
        var rollups = await SegmentFile.ReadRollupsAsync(path, CancellationToken.None);
        Assert.Equal(3, rollups.Count);
        for (var g = 0; g < 3; g++)
        {
            var from = g * SegmentWriter.MaxRowGroupRows;
            var expected = Aggregate.Scan(points.Steps, points.Values, points.Timestamps, from, from + SegmentWriter.MaxRowGroupRows);
            var total = rollups[g].Total();
            Assert.Equal((expected.Count, expected.Min, expected.Max, expected.FirstStep, expected.LastStep), (total.Count, total.Min, total.Max, total.FirstStep, total.LastStep));
        }

        // A file written before: the rollups in base64 in the footer.
        var old = Path.Combine(directory.Path, "old.parquet");
        await WriteOnePointFileAsync(old, SegmentWriter.RollupMetadataKey, Convert.ToBase64String(Rollup.Serialize([(0, rollups[1])])));

        Assert.Equal(rollups[1].Total().Sum, (await SegmentFile.ReadRollupsAsync(old, CancellationToken.None))[0].Total().Sum);

        // A locator that points past the end is a damaged rollup, named with its file.
        var damaged = Path.Combine(directory.Path, "damaged.parquet");
        await WriteOnePointFileAsync(damaged, SegmentWriter.RollupBlockKey, $"4:{bytes.Length}");

        var error = await Assert.ThrowsAsync<IOException>(() => SegmentFile.ReadRollupsAsync(damaged, CancellationToken.None));
        Assert.Contains("damaged.parquet", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A point file of one point (step 1, value 1) written by Parquet.Net, with one key-value pair in its footer.</summary>
    private static async Task WriteOnePointFileAsync(string path, string key, string value)
    {
        var schema = new ParquetSchema(new DataField<int>("series_id"), new DataField<long>("step"), new DataField<float>("value"), new DataField<long>("timestamp_ms"));
        await using var stream = File.Create(path);
        await using var writer = await ParquetWriter.CreateAsync(schema, stream);
        writer.CustomMetadata = new Dictionary<string, string> { [key] = value };
        using var group = writer.CreateRowGroup();
        await group.WriteAsync(schema.DataFields[0], new ReadOnlyMemory<int>([7]));
        await group.WriteAsync(schema.DataFields[1], new ReadOnlyMemory<long>([1]));
        await group.WriteAsync(schema.DataFields[2], new ReadOnlyMemory<float>([1f]));
        await group.WriteAsync(schema.DataFields[3], new ReadOnlyMemory<long>([1]));
    }

    [Fact]
    public void A_pooled_encoder_lets_go_of_a_footer_buffer_grown_for_a_large_file_and_keeps_a_small_one()
    {
        var encoder = new PointPageEncoder();
        encoder.Footer.WriteBinary(1, new byte[PointPageEncoder.MaxKeptFooterBytes + 1]);
        Assert.True(encoder.Footer.Capacity > PointPageEncoder.MaxKeptFooterBytes);
        PointPageEncoder.Return(encoder);
        Assert.Equal((64 * 1024, 0), (encoder.Footer.Capacity, encoder.Footer.Length));

        var kept = new PointPageEncoder();
        kept.Footer.WriteBinary(1, new byte[100_000]);
        var capacity = kept.Footer.Capacity;
        Assert.True(capacity > 64 * 1024);
        PointPageEncoder.Return(kept);
        Assert.Equal((capacity, 0), (kept.Footer.Capacity, kept.Footer.Length));
    }

    [Fact]
    public void Byte_stream_split_float_puts_byte_k_of_value_i_at_k_times_n_plus_i()
    {
        var random = new Random(7);
        for (var n = 0; n <= 41; n++)
        {
            var values = Enumerable.Range(0, n).Select(i => i % 7 == 3 ? double.NaN : i % 5 == 2 ? -0.0 : (double)(float)((random.NextDouble() * 200) - 100)).ToArray();
            var output = new byte[4 * n];
            PointPageEncoder.EncodeByteStreamSplitFloat(values, output);
            for (var i = 0; i < n; i++)
            {
                var bits = BitConverter.SingleToUInt32Bits((float)values[i]);
                for (var k = 0; k < 4; k++)
                {
                    Assert.True((byte)(bits >> (8 * k)) == output[(k * n) + i], $"n={n}: byte {k} of value {i} ({values[i]})");
                }
            }
        }
    }

    [Fact]
    public void Deltas_are_each_difference_and_their_minimum_and_maximum()
    {
        var random = new Random(8);
        for (var n = 0; n <= 41; n++)
        {
            var values = Enumerable.Range(0, n + 1).Select(i => i % 4 == 1 ? random.NextInt64(long.MinValue, long.MaxValue) : 1_700_000_000_000L + (i * 1000L)).ToArray();
            var deltas = new ulong[n];
            var (min, max) = PointPageEncoder.Deltas(values, deltas);
            var expected = Enumerable.Range(0, n).Select(i => unchecked(values[i + 1] - values[i])).ToArray();
            Assert.Equal(expected.Select(d => (ulong)d), deltas);
            Assert.Equal(n == 0 ? long.MaxValue : expected.Min(), min);
            Assert.Equal(n == 0 ? long.MinValue : expected.Max(), max);
        }
    }

    [Fact]
    public void Delta_binary_packed_of_parts_is_that_of_the_whole_column()
    {
        var random = new Random(21);
        using var encoder = new PointPageEncoder();
        foreach (var n in new[] { 1, 2, 128, 129, 130, 257, 1000, 4097 })
        {
            var values = Enumerable.Range(0, n).Select(i => 1_700_000_000_000L + (i * 1000L) + random.Next(-50, 50)).ToArray();
            var whole = new byte[PointPageEncoder.MaxDeltaBinaryPackedBytes(n)];
            var wholeLength = encoder.EncodeDeltaBinaryPacked([values], whole);
            for (var trial = 0; trial < 20; trial++)
            {
                var parts = new List<ReadOnlyMemory<long>>();
                for (var at = 0; at < n;)
                {
                    var take = Math.Min(n - at, random.Next(4) switch { 0 => 0, 1 => 1, 2 => random.Next(120, 140), _ => random.Next(1, 600) });
                    parts.Add(values.AsMemory(at, take));
                    at += take;
                }

                var page = new byte[PointPageEncoder.MaxDeltaBinaryPackedBytes(n)];
                var length = encoder.EncodeDeltaBinaryPacked(parts, page);
                Assert.True(whole.AsSpan(0, wholeLength).SequenceEqual(page.AsSpan(0, length)), $"n={n}, parts of {string.Join(",", parts.Select(p => p.Length))}");
            }
        }
    }

    /// <summary>
    /// A seal encodes a series' head chunks where they are. The file must be the one the same points
    /// make as one array, byte for byte: pages, statistics and rollups, whatever the part sizes
    /// around the 128-value delta blocks, the 1024-point rollup blocks and the row-group boundary.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_series_written_from_parts_is_the_file_written_from_one_array(bool float32)
    {
        using var directory = new TempDirectory();
        var random = new Random(float32 ? 31 : 32);
        var n = SegmentWriter.MaxRowGroupRows + 300_001;
        var whole = new SeriesColumns(n) { Count = n };
        for (var i = 0; i < n; i++)
        {
            whole.Steps[i] = (i * 2L) + (i % 3 == 0 ? 1 : 0);
            var value = i % 1001 == 7 ? double.NaN : (random.NextDouble() * 10) - 5;
            whole.Values[i] = float32 ? (float)value : value;
            whole.Timestamps[i] = 1_700_000_000_000L + (i * 10L) + random.Next(-5000, 5000); // not sorted
        }

        var parts = new List<SeriesColumns>();
        for (var at = 0; at < n;)
        {
            var take = Math.Min(n - at, random.Next(6) switch
            {
                0 => random.Next(1, 3),
                1 => random.Next(126, 131),
                2 => random.Next(1022, 1027),
                3 => 65_536,
                4 => random.Next(100_000, 400_000),
                _ => random.Next(1, 5000),
            });
            var part = new SeriesColumns(take + 7) { Count = take }; // like a head chunk: room past its points
            Array.Copy(whole.Steps, at, part.Steps, 0, take);
            Array.Copy(whole.Values, at, part.Values, 0, take);
            Array.Copy(whole.Timestamps, at, part.Timestamps, 0, take);
            part.Steps.AsSpan(take).Fill(long.MinValue);
            part.Values.AsSpan(take).Fill(1e300);
            part.Timestamps.AsSpan(take).Fill(long.MaxValue);
            parts.Add(part);
            at += take;
        }

        async Task<byte[]> WriteAsync(string name, IReadOnlyList<SeriesColumns> series)
        {
            var path = Path.Combine(directory.Path, name);
            await using (var writer = await SegmentWriter.CreateAsync(path, float32, CompressionMethod.Zstd, CancellationToken.None))
            {
                await writer.AddInOrderAsync(4, series, null, CancellationToken.None);
                await writer.CompleteAsync(CancellationToken.None);
            }

            return await File.ReadAllBytesAsync(path);
        }

        var expected = await WriteAsync("whole.parquet", [whole]);
        var actual = await WriteAsync("parts.parquet", parts);
        Assert.True(expected.AsSpan().SequenceEqual(actual), $"{parts.Count} parts: {expected.Length} bytes from one array, {actual.Length} from parts");
    }

    /// <summary>
    /// A seal hands the writer its head chunks' aggregates of whole 1024-point blocks. Each must be
    /// taken exactly where it covers a rollup block of the row group (the part's block lies inside
    /// the row group at a multiple of 1024 from both starts, and is final), and every other block
    /// scanned. The given blocks carry a marker sum, so the footer shows which were taken.
    /// </summary>
    [Fact]
    public async Task Known_whole_blocks_are_taken_into_the_rollup_and_the_rest_is_scanned()
    {
        using var directory = new TempDirectory();
        var random = new Random(41);
        // The first five parts hold 76,876 points; the sixth ends 1024 points into the second row group.
        var sizes = new[] { 3 * 1024, 65_536, 1000, 5 * 1024, 2048 + 100, SegmentWriter.MaxRowGroupRows + 1024 - 76_876, 4096, 700 };
        var parts = new List<SeriesColumns>();
        var blocks = new List<SegmentWriter.PartBlocks>();
        long step = 0;
        foreach (var (size, p) in sizes.Select((size, p) => (size, p)))
        {
            var part = new SeriesColumns(size) { Count = size };
            for (var i = 0; i < size; i++)
            {
                part.Steps[i] = step++;
                part.Values[i] = (float)(random.NextDouble() - 0.5);
                part.Timestamps[i] = 1_700_000_000_000L + random.Next(0, 100_000);
            }

            var whole = size / Rollup.BlockSize;
            var marked = Enumerable.Range(0, whole).Select(j =>
            {
                var a = Aggregate.Scan(part.Steps, part.Values, part.Timestamps, j * Rollup.BlockSize, (j + 1) * Rollup.BlockSize);
                a.Sum += 1000 + p; // not the scan's sum: shows the block was taken
                return a;
            }).ToArray();
            parts.Add(part);
            blocks.Add(new SegmentWriter.PartBlocks(marked, p == 1 ? whole - 3 : whole)); // part 1's last three are not final
        }

        var path = Path.Combine(directory.Path, "points.parquet");
        await using (var writer = await SegmentWriter.CreateAsync(path, float32: true, CompressionMethod.Zstd, CancellationToken.None))
        {
            await writer.AddInOrderAsync(9, parts, blocks, CancellationToken.None);
            await writer.CompleteAsync(CancellationToken.None);
        }

        var rollups = await SegmentFile.ReadRollupsAsync(path, CancellationToken.None);
        Assert.Equal(2, rollups.Count);
        var taken = 0;
        var rowGroupStart = 0;
        for (var g = 0; g < 2; g++)
        {
            var level = rollups[g].Levels[0];
            var rows = g == 0 ? SegmentWriter.MaxRowGroupRows : sizes.Sum() - SegmentWriter.MaxRowGroupRows;
            Assert.Equal((rows + Rollup.BlockSize - 1) / Rollup.BlockSize, level.Length);
            for (var k = 0; k < level.Length; k++)
            {
                // Where the block's points lie: one part, at which offset, and is that part's block final?
                var from = rowGroupStart + (k * Rollup.BlockSize);
                var to = Math.Min(rowGroupStart + rows, from + Rollup.BlockSize);
                var partStart = 0;
                var p = 0;
                while (from >= partStart + sizes[p])
                {
                    partStart += sizes[p++];
                }

                var local = from - partStart;
                var expected = to - from == Rollup.BlockSize && to <= partStart + sizes[p] && local % Rollup.BlockSize == 0 && local / Rollup.BlockSize < blocks[p].Final
                    ? blocks[p].Blocks![local / Rollup.BlockSize]
                    : ScanAcross(parts, sizes, from, to);
                Assert.True(expected.Equals(level[k]), $"row group {g}, block {k} (points {from}..{to}): {level[k].Sum} against {expected.Sum}");
                taken += expected.Sum > 500 ? 1 : 0;
            }

            rowGroupStart += rows;
        }

        // Part 0's 3, part 1's 61 final ones, and part 6's 4 (1024 points into the second row
        // group); parts 3 to 5 lie 1000 points off the grid, and part 2 and 7 hold no whole block.
        Assert.Equal(68, taken);
    }

    private static Aggregate ScanAcross(List<SeriesColumns> parts, int[] sizes, int from, int to)
    {
        var block = new SeriesColumns(to - from) { Count = to - from };
        var partStart = 0;
        for (var p = 0; p < parts.Count; p++, partStart += sizes[p - 1])
        {
            for (var i = Math.Max(from, partStart); i < Math.Min(to, partStart + sizes[p]); i++)
            {
                block.Steps[i - from] = parts[p].Steps[i - partStart];
                block.Values[i - from] = parts[p].Values[i - partStart];
                block.Timestamps[i - from] = parts[p].Timestamps[i - partStart];
            }
        }

        return Aggregate.Scan(block.Steps, block.Values, block.Timestamps, 0, block.Count);
    }

    [Fact]
    public void A_short_last_miniblock_is_padded_with_zero_bits()
    {
        // A first block of wide random deltas, then a block of 5 deltas (0, 1, 2, 3, 4: 3 bits each).
        var random = new Random(5);
        var values = Enumerable.Range(0, 129).Select(_ => random.NextInt64()).Concat(Enumerable.Range(0, 5).Select(i => (long)i * (i + 1) / 2)).ToArray();
        values[129] = values[128]; // the first delta of the last block is 0
        for (var i = 130; i < values.Length; i++)
        {
            values[i] = values[i - 1] + (i - 129);
        }

        using var encoder = new PointPageEncoder();
        var page = new byte[PointPageEncoder.MaxDeltaBinaryPackedBytes(values.Length)];
        var length = encoder.EncodeDeltaBinaryPacked([values], page);

        // The last miniblock is 32 values of 3 bits (12 bytes), of which the first 15 bits are used.
        Assert.Equal(3, page[length - 12 - 4]);
        Assert.Equal(0, page[length - 11] & 0x80);
        Assert.All(page[(length - 10)..length], b => Assert.Equal(0, b));
        var decoded = new long[values.Length];
        PointPageDecoder.DecodeDeltaBinaryPacked(page, length, decoded);
        Assert.Equal(values, decoded);
    }

    [Fact]
    public async Task Parquet_Net_and_DuckDB_read_every_point_the_statistics_and_the_rollups_back()
    {
        using var directory = new TempDirectory();
        var random = new Random(11);
        var series = new List<(int Id, SeriesKey Key, SeriesColumns Points)>();
        foreach (var (id, n) in new[] { (7, 1), (3, 5000), (12, 129) })
        {
            var points = new SeriesColumns(n) { Count = n };
            for (var i = 0; i < n; i++)
            {
                points.Steps[i] = (i * 3L) + id;
                points.Values[i] = i % 97 == 5 ? float.NaN : (float)(random.NextDouble() - 0.5);
                points.Timestamps[i] = 1_700_000_000_000L + (i * 250L) - random.Next(0, 1000); // not sorted
            }

            series.Add((id, SeriesKey.Create("key", RunId.New(), $"m{id}"), points));
        }

        var path = Path.Combine(directory.Path, "points.parquet");
        var info = await SegmentFile.WriteAsync(path, series, float32: true, CompressionMethod.Zstd, CancellationToken.None);
        Assert.Equal(new FileInfo(path).Length, info.Bytes);
        Assert.Equal(5130, info.Rows);

        // Parquet.Net: the schema, every row group's points and statistics, and the rollups.
        await using (var stream = File.OpenRead(path))
        await using (var reader = await ParquetReader.CreateAsync(stream))
        {
            Assert.Equal(["series_id", "step", "value", "timestamp_ms"], reader.Schema.DataFields.Select(f => f.Name));
            Assert.Equal([typeof(int), typeof(long), typeof(float), typeof(long)], reader.Schema.DataFields.Select(f => f.ClrType));
            Assert.Equal(series.Count, reader.RowGroupCount);
            var rollups = await SegmentFile.ReadRollupsAsync(path, CancellationToken.None);
            for (var g = 0; g < series.Count; g++)
            {
                var (id, _, points) = series[g];
                var read = await SegmentFile.ReadAsync(reader, path, g, float32: true, CancellationToken.None);
                Assert.Equal(points.Steps.AsSpan(0, points.Count).ToArray(), read.Steps.AsSpan(0, read.Count).ToArray());
                Assert.Equal(points.Timestamps.AsSpan(0, points.Count).ToArray(), read.Timestamps.AsSpan(0, read.Count).ToArray());
                Assert.Equal(points.Values.AsSpan(0, points.Count).ToArray(), read.Values.AsSpan(0, read.Count).ToArray());

                var columns = reader.Metadata!.RowGroups[g].Columns;
                Assert.All(columns, c => Assert.Equal(Parquet.Meta.CompressionCodec.ZSTD, c.MetaData!.Codec));
                Assert.Equal(BitConverter.GetBytes(id), columns[0].MetaData!.Statistics!.MinValue);
                Assert.Equal(BitConverter.GetBytes(id), columns[0].MetaData!.Statistics!.MaxValue);
                Assert.Equal(BitConverter.GetBytes(points.Steps[0]), columns[1].MetaData!.Statistics!.MinValue);
                Assert.Equal(BitConverter.GetBytes(points.Steps[points.Count - 1]), columns[1].MetaData!.Statistics!.MaxValue);
                Assert.Equal(BitConverter.GetBytes(points.Timestamps.AsSpan(0, points.Count).ToArray().Max()), columns[3].MetaData!.Statistics!.MaxValue);
                Assert.Equal(BitConverter.GetBytes(points.Timestamps.AsSpan(0, points.Count).ToArray().Min()), columns[3].MetaData!.Statistics!.MinValue);

                var expected = Rollup.Build(points.Steps, points.Values, points.Timestamps, 0, points.Count, Rollup.Coarse).Total();
                var total = rollups[g].Total();
                Assert.Equal((expected.Count, expected.First, expected.Last), (total.Count, total.First, total.Last));
            }
        }

        // DuckDB: every row in file order, and its own view of the statistics.
        using var connection = new DuckDBConnection("Data Source=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        var file = path.Replace("'", "''", StringComparison.Ordinal);
        command.CommandText = $"SELECT series_id, step, value, timestamp_ms FROM read_parquet('{file}')";
        using (var rows = command.ExecuteReader())
        {
            foreach (var (id, _, points) in series)
            {
                for (var i = 0; i < points.Count; i++)
                {
                    Assert.True(rows.Read(), $"DuckDB ran out of rows at series {id}, point {i}");
                    Assert.Equal(id, rows.GetInt32(0));
                    Assert.Equal(points.Steps[i], rows.GetInt64(1));
                    Assert.Equal((float)points.Values[i], rows.GetFloat(2));
                    Assert.Equal(points.Timestamps[i], rows.GetInt64(3));
                }
            }

            Assert.False(rows.Read());
        }

        command.CommandText = $"SELECT row_group_id, stats_min, stats_max FROM parquet_metadata('{file}') WHERE path_in_schema = 'step' ORDER BY row_group_id";
        using (var stats = command.ExecuteReader())
        {
            foreach (var (_, _, points) in series)
            {
                Assert.True(stats.Read());
                Assert.Equal(points.Steps[0].ToString(CultureInfo.InvariantCulture), stats.GetString(1));
                Assert.Equal(points.Steps[points.Count - 1].ToString(CultureInfo.InvariantCulture), stats.GetString(2));
            }
        }
    }

    [Fact]
    public async Task Uncompressed_and_double_files_read_back_and_other_codecs_are_refused()
    {
        using var directory = new TempDirectory();
        var points = new SeriesColumns(3000) { Count = 3000 };
        for (var i = 0; i < points.Count; i++)
        {
            points.Steps[i] = i;
            points.Values[i] = Math.PI * i;
            points.Timestamps[i] = i * 10L;
        }

        var path = Path.Combine(directory.Path, "points.parquet");
        await SegmentFile.WriteAsync(path, [(0, SeriesKey.Create("key", RunId.New(), "m"), points)], float32: false, CompressionMethod.None, CancellationToken.None);
        var read = await SegmentFile.ReadAsync(path, 0, float32: false, CancellationToken.None);
        Assert.Equal(points.Values.AsSpan(0, points.Count).ToArray(), read.Values.AsSpan(0, read.Count).ToArray());
        Assert.True(new FileInfo(path).Length > points.Count * 8, "the double values are stored uncompressed");

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => SegmentWriter.CreateAsync(Path.Combine(directory.Path, "snappy.parquet"), float32: true, CompressionMethod.Snappy, CancellationToken.None));
        Assert.Empty(Directory.GetFiles(directory.Path, "snappy*"));
    }

    [Fact]
    public async Task A_large_file_is_written_back_while_it_grows_not_only_by_the_final_fsync()
    {
        // 3M double points uncompressed: three row groups of about 12 MB (8-byte values, 4-byte
        // series ids; the steps and timestamps delta-encode to almost nothing). Writeback starts
        // after each row group that takes the bytes not yet written back past FileWriteback.BytesPerSync.
        using var directory = new TempDirectory();
        var random = new Random(9);
        var points = new SeriesColumns(3_000_000) { Count = 3_000_000 };
        for (var i = 0; i < points.Count; i++)
        {
            points.Steps[i] = i;
            points.Values[i] = random.NextDouble();
            points.Timestamps[i] = 1_700_000_000_000L + i;
        }

        var path = Path.Combine(directory.Path, "large.parquet");
        long writeback;
        await using (var writer = await SegmentWriter.CreateAsync(path, float32: false, CompressionMethod.None, CancellationToken.None))
        {
            await writer.AddAsync(0, points, CancellationToken.None);
            await writer.CompleteAsync(CancellationToken.None);
            writeback = writer.WritebackBytes;
        }

        var size = new FileInfo(path).Length;
        if (OperatingSystem.IsLinux())
        {
            // All three row groups' bytes, not the footer after them.
            Assert.True(writeback >= 3_000_000L * 12 && writeback < size, $"writeback started for {writeback} of {size} bytes");
        }

        var values = new List<double>();
        for (var group = 0; group * SegmentWriter.MaxRowGroupRows < points.Count; group++)
        {
            var read = await SegmentFile.ReadAsync(path, group, float32: false, CancellationToken.None);
            values.AddRange(read.Values.AsSpan(0, read.Count).ToArray());
        }

        Assert.Equal(points.Values.AsSpan(0, points.Count).ToArray(), values);
    }
}
