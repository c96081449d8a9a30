package dataset_test

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
)

const maxChunk = dataset.MaxChunkBytes

// rowsOfSize returns rows of one field whose encoding is exactly n bytes
// (n >= 2): fields of 100 bytes, then one that makes up the rest.
func rowsOfSize(n int) [][]string {
	const field = 100 // a row of it: count, length, bytes = 102
	k := (n - 2) / (field + 2)
	rows := make([][]string, 0, k+1)
	f := string(bytes.Repeat([]byte{'x'}, field))
	for range k {
		rows = append(rows, []string{f})
	}
	return append(rows, []string{string(bytes.Repeat([]byte{'y'}, n-k*(field+2)-2))})
}

// encode is the raw encoding of rows, as inside a chunk.
func encode(rows [][]string) []byte {
	var b []byte
	for _, r := range rows {
		b = append(b, byte(len(r)))
		for _, f := range r {
			b = appendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
	}
	return b
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// bomb is a crafted chunk: valid rows {"1","a"}, repeated until they
// inflate to at least n bytes, compressed about 200:1 (256 MB from 1.4 MB,
// as found against the running stack). It returns the chunk and its rows.
func bomb(tb testing.TB, n int) ([]byte, int64) {
	tb.Helper()
	row := []byte{2, 1, '1', 1, 'a'}
	block := bytes.Repeat(row, 64<<10/len(row))
	var b bytes.Buffer
	b.WriteByte(1) // the DEFLATE format byte
	w, err := flate.NewWriter(&b, flate.BestSpeed)
	if err != nil {
		tb.Fatal(err)
	}
	var rows int64
	for written := 0; written < n; written += len(block) {
		if _, err := w.Write(block); err != nil {
			tb.Fatal(err)
		}
		rows += int64(len(block) / len(row))
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes(), rows
}

// TestChunkLimit: a reader inflates a chunk only up to the limit; a chunk
// past it, however it was made, is corrupt (the writer never makes one).
func TestChunkLimit(t *testing.T) {
	t.Parallel()
	type chunkOf struct {
		data []byte
		rows int64
	}
	whole := func(n int) chunkOf {
		rows := rowsOfSize(n)
		return chunkOf{chunk(encode(rows)), int64(len(rows))}
	}
	wholeS2 := func(n int) chunkOf {
		rows := rowsOfSize(n)
		return chunkOf{append([]byte{byte(dataset.S2)}, s2.Encode(nil, encode(rows))...), int64(len(rows))}
	}
	tests := []struct {
		name    string
		chunk   func(t *testing.T) chunkOf
		width   int
		wantErr error // nil: every row reads back
	}{
		{"exactly the limit", func(*testing.T) chunkOf { return whole(maxChunk) }, 1, nil},
		{"one byte past the limit", func(*testing.T) chunkOf { return whole(maxChunk + 1) }, 1, dataset.ErrCorrupt},
		{"16 MB of valid rows from 80 KB", func(t *testing.T) chunkOf {
			d, n := bomb(t, 16<<20)
			return chunkOf{d, n}
		}, 2, dataset.ErrCorrupt},
		{"S2: exactly the limit", func(*testing.T) chunkOf { return wholeS2(maxChunk) }, 1, nil},
		{"S2: one byte past the limit", func(*testing.T) chunkOf { return wholeS2(maxChunk + 1) }, 1, dataset.ErrCorrupt},
		{"S2: 16 MB of valid rows", func(t *testing.T) chunkOf {
			row := []byte{2, 1, '1', 1, 'a'}
			raw := bytes.Repeat(row, 16<<20/len(row))
			return chunkOf{append([]byte{byte(dataset.S2)}, s2.Encode(nil, raw)...), int64(len(raw) / len(row))}
		}, 2, dataset.ErrCorrupt},
		{"S2: a header claiming 4 GiB, no body", func(*testing.T) chunkOf {
			return chunkOf{[]byte{byte(dataset.S2), 0xff, 0xff, 0xff, 0xff, 0x0f}, 1}
		}, 2, dataset.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := dataset.NewMemStore()
			c := tt.chunk(t)
			if err := st.PutChunk(ctx, "d", 0, c.data); err != nil {
				t.Fatal(err)
			}
			if err := st.Finish(ctx, "d", 1, c.rows); err != nil {
				t.Fatal(err)
			}
			r, err := dataset.Open(ctx, st, "d", tt.width)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for {
				row, err2 := r.Next()
				if err2 != nil {
					if !errors.Is(err2, io.EOF) {
						err = err2
					}
					break
				}
				got = append(got, row)
			}
			if c := dataset.InflatedCap(r); c > maxChunk+1 {
				t.Errorf("the reader's buffer grew to %d bytes, past the limit %d", c, maxChunk)
			}
			if tt.wantErr == nil {
				if err != nil || int64(len(got)) != c.rows {
					t.Errorf("read %d of %d rows: %v", len(got), c.rows, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("reading a %d-byte chunk: %d rows, %v; want an error wrapping %v", len(c.data), len(got), err, tt.wantErr)
			}
		})
	}
}

// TestWriterChunkLimit: the writer never makes a chunk a reader refuses.
func TestWriterChunkLimit(t *testing.T) {
	t.Parallel()
	big := func(n int) []string { return []string{strings.Repeat("x", n)} }
	tests := []struct {
		name    string
		limit   int
		rows    [][]string
		wantErr error
	}{
		// One field of n bytes encodes to 1 + 3 (uvarint) + n bytes.
		{"a row of exactly the limit", 0, [][]string{{"a"}, big(maxChunk - 4), {"b"}}, nil},
		{"a row one byte past it", 0, [][]string{{"a"}, big(maxChunk - 3), {"b"}}, dataset.ErrRowTooLarge},
		{"a chunk limit past the maximum is lowered to it", 8 << 20, [][]string{
			big(maxChunk / 2), big(maxChunk / 2), big(maxChunk / 2), big(maxChunk - 4), big(10),
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := &sizes{MemStore: dataset.NewMemStore()}
			w := dataset.NewWriter(ctx, st, "d", tt.limit)
			var err error
			var written [][]string
			for _, r := range tt.rows {
				if err = w.Write(r); err != nil {
					break
				}
				written = append(written, r)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Write: %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprint(maxChunk)) {
				t.Errorf("error %q does not give the limit", err)
			}
			// The rows before the refused one still make a readable dataset.
			chunks, rows, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			if rows != int64(len(written)) {
				t.Errorf("Close rows = %d, want %d", rows, len(written))
			}
			for i, n := range st.put {
				if n > maxChunk {
					t.Errorf("chunk %d has %d bytes, past the limit %d", i, n, maxChunk)
				}
			}
			if err := st.Finish(ctx, "d", chunks, rows); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(ctx, st, "d", 1)
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			if len(got) != len(written) {
				t.Fatalf("read back %d rows, want %d", len(got), len(written))
			}
			for i := range got {
				if got[i][0] != written[i][0] {
					t.Errorf("row %d differs (%d bytes, want %d)", i, len(got[i][0]), len(written[i][0]))
				}
			}
		})
	}
}

// BenchmarkCraftedChunk reads a crafted 1.4 MB chunk that inflates to
// 256 MB: its B/op is what one such chunk costs a reader.
func BenchmarkCraftedChunk(b *testing.B) {
	ctx := context.Background()
	st := dataset.NewMemStore()
	data, rows := bomb(b, 256<<20)
	if err := st.PutChunk(ctx, "d", 0, data); err != nil {
		b.Fatal(err)
	}
	if err := st.Finish(ctx, "d", 1, rows); err != nil {
		b.Fatal(err)
	}
	b.Logf("chunk: %d bytes, %d rows", len(data), rows)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, err := dataset.Open(ctx, st, "d", 2)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Next(); err != nil && !errors.Is(err, dataset.ErrCorrupt) {
			b.Fatal(err)
		}
	}
}
