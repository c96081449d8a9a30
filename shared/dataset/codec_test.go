package dataset_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/s2"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
)

// withdrawRows are n rows shaped like ListenWithdraw's dataset (user_id,
// id, amount, currency, status, created_at) in key order: the chunk
// workload the codec was chosen on.
func withdrawRows(n int) [][]string {
	statuses := []string{"SUCCESS", "PENDING", "FAILED", "REJECTED"}
	rows := make([][]string, n)
	for i := range rows {
		u := 1 + i/9
		cur := "USD"
		if u%4 == 0 {
			cur = "EUR"
		}
		c := (i*7919)%500_000 + 1
		rows[i] = []string{fmt.Sprint(u), fmt.Sprint(1 + (i*104729)%(n*3)), fmt.Sprintf("%d.%02d", c/100, c%100), cur,
			statuses[(i*31)%4], fmt.Sprintf("2026-%02d-%02dT%02d:%02d:%02dZ", 1+i%12, 1+i%28, i%24, (i*7)%60, (i*13)%60)}
	}
	return rows
}

// chunkStore keeps every stored chunk in order, as the store saw it.
type chunkStore struct {
	*dataset.MemStore
	chunks [][]byte
}

func (s *chunkStore) PutChunk(ctx context.Context, name string, i int64, data []byte) error {
	s.chunks = append(s.chunks, bytes.Clone(data))
	return s.MemStore.PutChunk(ctx, name, i, data)
}

// encodeRows is the rows' encoding inside a chunk (uvarint field count,
// then each field's uvarint length and bytes), written out here so the
// test does not lean on the writer it checks.
func encodeRows(rows [][]string) []byte {
	var b []byte
	for _, r := range rows {
		b = binary.AppendUvarint(b, uint64(len(r)))
		for _, f := range r {
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
	}
	return b
}

// Chunks of both codecs read back. A DEFLATE chunk of the versions before
// S2 (the standard library's encoder, the format byte 1) reads back the same
// rows; a Writer set to Deflate, as a listener is for a report the previous
// deployment dispatched, writes chunks that the standard library inflates to
// exactly the rows' encoding, so that deployment's aggregator reads them;
// and S2 chunks (the default) decode to the same encoding.
func TestChunksReadableAcrossCodecs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rows := withdrawRows(20_000)
	for _, r := range awkward { // every byte survives either codec; width 6 throughout
		rows = append(rows, []string{r[0], r[1], r[2], "", "\r\n", "x"})
	}
	const limit = 64 << 10

	t.Run("previous version's chunks", func(t *testing.T) {
		t.Parallel()
		st := dataset.NewMemStore()
		// Where chunks end does not matter to a reader: 1000 rows each.
		var n int64
		for i := 0; i < len(rows); i += 1000 {
			var b bytes.Buffer
			b.WriteByte(1)
			zw, err := flate.NewWriter(&b, flate.BestSpeed)
			if err != nil {
				t.Fatal(err)
			}
			zw.Write(encodeRows(rows[i:min(i+1000, len(rows))]))
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			if err := st.PutChunk(ctx, "d", n, b.Bytes()); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if err := st.Finish(ctx, "d", n, int64(len(rows))); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(ctx, st, "d", 6)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rows, got); diff != "" {
			t.Errorf("rows (-want +got):\n%s", diff)
		}
	})

	for _, tc := range []struct {
		name   string
		codec  dataset.Codec // 0: the default
		format dataset.Codec
		decode func([]byte) ([]byte, error) // by the codec's own library
	}{
		{"read by the previous version", dataset.Deflate, dataset.Deflate, func(c []byte) ([]byte, error) {
			return io.ReadAll(flate.NewReader(bytes.NewReader(c)))
		}},
		{"S2, the default", 0, dataset.S2, func(c []byte) ([]byte, error) { return s2.Decode(nil, c) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := &chunkStore{MemStore: dataset.NewMemStore()}
			writeAll(t, ctx, st, limit, tc.codec, rows)
			if len(st.chunks) < 2 {
				t.Fatalf("%d chunks, want several", len(st.chunks))
			}
			var raw []byte
			for i, c := range st.chunks {
				if c[0] != byte(tc.format) {
					t.Fatalf("chunk %d format byte %d, want %d", i, c[0], tc.format)
				}
				b, err := tc.decode(c[1:])
				if err != nil {
					t.Fatalf("chunk %d: %v", i, err)
				}
				raw = append(raw, b...)
			}
			if !bytes.Equal(raw, encodeRows(rows)) {
				t.Errorf("the chunks decoded by the codec's library are not the rows' encoding (%d bytes, want %d)", len(raw), len(encodeRows(rows)))
			}
			got, err := readAll(ctx, st, "d", 6)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(rows, got); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

// writeAll writes rows as dataset "d" of st, chunks of limit bytes, with
// codec (0: the default), and finishes it.
func writeAll(tb testing.TB, ctx context.Context, st dataset.WriteStore, limit int, codec dataset.Codec, rows [][]string) {
	tb.Helper()
	w := dataset.NewWriter(ctx, st, "d", limit)
	if codec != 0 {
		w.SetCodec(codec)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			tb.Fatal(err)
		}
	}
	chunks, n, err := w.Close()
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.Finish(ctx, "d", chunks, n); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkChunkCodec is the measurement behind the codec: CPU to write
// and to read ListenWithdraw-shaped rows through the dataset (MB/s of the
// rows' encoding) and the compression ratio, at the default chunk size.
func BenchmarkChunkCodec(b *testing.B) {
	ctx := context.Background()
	rows := withdrawRows(200_000)
	raw := int64(len(encodeRows(rows)))
	for _, codec := range []dataset.Codec{dataset.Deflate, dataset.S2} {
		b.Run(fmt.Sprint("codec=", codec), func(b *testing.B) { benchmarkCodec(b, ctx, rows, raw, codec) })
	}
}

func benchmarkCodec(b *testing.B, ctx context.Context, rows [][]string, raw int64, codec dataset.Codec) {
	b.Run("write", func(b *testing.B) {
		b.SetBytes(raw)
		var stored int64
		for b.Loop() {
			st := &chunkStore{MemStore: dataset.NewMemStore()}
			w := dataset.NewWriter(ctx, st, "d", 0)
			w.SetCodec(codec)
			for _, r := range rows {
				if err := w.Write(r); err != nil {
					b.Fatal(err)
				}
			}
			if _, _, err := w.Close(); err != nil {
				b.Fatal(err)
			}
			stored = 0
			for _, c := range st.chunks {
				stored += int64(len(c))
			}
		}
		b.ReportMetric(float64(raw)/float64(stored), "ratio")
	})
	b.Run("read", func(b *testing.B) {
		st := dataset.NewMemStore()
		writeAll(b, ctx, st, 0, codec, rows)
		b.SetBytes(raw)
		for b.Loop() {
			r, err := dataset.Open(ctx, st, "d", 6)
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := r.Next(); err != nil {
					if err != io.EOF {
						b.Fatal(err)
					}
					break
				}
			}
		}
	})
}
