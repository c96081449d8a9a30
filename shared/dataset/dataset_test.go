package dataset_test

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/s2"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
)

// awkward rows: every byte of every field must survive, including the
// ones CSV would have to quote or would rewrite ("\r\n" inside a field).
var awkward = [][]string{
	{"1", "plain", "12.50"},
	{"2", "a,b", `say "hi"`},
	{"3", "line1\nline2", "\n"},
	{"4", "", ""},
	{"5", " leading space", "trailing space "},
	{"6", "日本語", "💸 ünïcödé"},
	{"7", `"`, `""`},
	{"8", `\.`, "tab\there"},
	{"9", "a\rb", "#not a comment"},
	{"10", strings.Repeat("x", 300), ",,,"},
	{"11", "crlf\r\ninside", "\x00nul"},
}

// readAll reads every row of name; rows are copied (the Reader reuses them).
func readAll(ctx context.Context, st dataset.Store, name string, width int) ([][]string, error) {
	r, err := dataset.Open(ctx, st, name, width)
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows = append(rows, slices.Clone(row))
	}
}

// sizes records the size of every chunk put, before compression.
type sizes struct {
	*dataset.MemStore
	put []int
}

func (s *sizes) PutChunk(ctx context.Context, name string, i int64, data []byte) error {
	if int(i) != len(s.put) {
		return fmt.Errorf("chunk %d put after %d chunks", i, len(s.put))
	}
	raw, err := inflate(data)
	if err != nil {
		return err
	}
	s.put = append(s.put, len(raw))
	return s.MemStore.PutChunk(ctx, name, i, data)
}

// chunk is a DEFLATE chunk, as the previous versions stored them (and a
// Writer with SetCodec(Deflate) still does): format byte 1, then DEFLATE.
func chunk(raw []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(1)
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(raw)
	w.Close()
	return b.Bytes()
}

// inflate decodes a stored chunk of either format, without the reader.
func inflate(data []byte) ([]byte, error) {
	switch {
	case len(data) > 0 && data[0] == byte(dataset.S2):
		return s2.Decode(nil, data[1:])
	case len(data) > 0 && data[0] == byte(dataset.Deflate):
		return io.ReadAll(flate.NewReader(bytes.NewReader(data[1:])))
	}
	return nil, fmt.Errorf("chunk format %v, want 1 or 2", data[:min(1, len(data))])
}

// Chunks are stored compressed: repetitive rows take far less than their size.
func TestChunksCompressed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &stored{MemStore: dataset.NewMemStore()}
	w := dataset.NewWriter(ctx, st, "d", 0)
	raw := 0
	for i := range 5000 {
		row := []string{fmt.Sprint(1000 + i), fmt.Sprint(i), "12.50", "USD", "SUCCESS", "2026-01-05T10:00:00Z"}
		raw += len(strings.Join(row, ","))
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st.bytes*2 > raw {
		t.Errorf("stored %d bytes for %d bytes of rows, want less than half", st.bytes, raw)
	}
}

type stored struct {
	*dataset.MemStore
	bytes int
}

func (s *stored) PutChunk(ctx context.Context, name string, i int64, data []byte) error {
	s.bytes += len(data)
	return s.MemStore.PutChunk(ctx, name, i, data)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	longest := 0
	for _, r := range awkward {
		longest = max(longest, len(strings.Join(r, ","))+16) // quotes and escapes
	}
	tests := []struct {
		name       string
		limit      int
		rows       [][]string
		wantChunks int64 // -1: more than one
	}{
		{"default limit: one chunk", 0, awkward, 1},
		{"limit 1: one row per chunk", 1, awkward, int64(len(awkward))},
		{"limit 40: many chunks", 40, awkward, -1},
		{"empty", 64, nil, 0},
		{"one row", 1, awkward[:1], 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := &sizes{MemStore: dataset.NewMemStore()}
			w := dataset.NewWriter(ctx, st, "plt_fund.vs_withdraw.user_id", tt.limit)
			for _, r := range tt.rows {
				if err := w.Write(r); err != nil {
					t.Fatalf("Write(%q): %v", r, err)
				}
			}
			chunks, rows, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			if rows != int64(len(tt.rows)) {
				t.Errorf("Close rows = %d, want %d", rows, len(tt.rows))
			}
			if chunks != int64(len(st.put)) {
				t.Errorf("Close chunks = %d, but %d chunks were put", chunks, len(st.put))
			}
			if tt.wantChunks >= 0 && chunks != tt.wantChunks {
				t.Errorf("chunks = %d, want %d", chunks, tt.wantChunks)
			}
			if tt.wantChunks < 0 && chunks < 2 {
				t.Errorf("chunks = %d, want several", chunks)
			}
			limit := tt.limit
			if limit <= 0 {
				limit = dataset.DefaultChunkBytes
			}
			for i, n := range st.put {
				if n == 0 {
					t.Errorf("chunk %d is empty", i)
				}
				// A chunk stays within the limit, unless it is one row
				// larger than the limit on its own.
				if n > max(limit, longest) {
					t.Errorf("chunk %d has %d bytes, limit %d (longest row %d)", i, n, limit, longest)
				}
				// A chunk is only closed when the next row would not fit.
				if i < len(st.put)-1 && n+longest <= limit {
					t.Errorf("chunk %d has %d bytes, room for another row below the limit %d, but is not the last", i, n, limit)
				}
			}
			if err := st.Finish(ctx, "plt_fund.vs_withdraw.user_id", chunks, rows); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(ctx, st, "plt_fund.vs_withdraw.user_id", 3)
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			if diff := cmp.Diff(tt.rows, got); diff != "" {
				t.Errorf("rows read back (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReaderRowsAndEOF(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := dataset.NewMemStore()
	if err := st.Put(ctx, "d", 1, awkward); err != nil {
		t.Fatal(err)
	}
	r, err := dataset.Open(ctx, st, "d", 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rows() != int64(len(awkward)) {
		t.Errorf("Rows() = %d, want %d", r.Rows(), len(awkward))
	}
	for range awkward {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := r.Next(); !errors.Is(err, io.EOF) {
			t.Errorf("Next after the last row (%d) = %v, want io.EOF", i, err)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	t.Parallel()
	rows := [][]string{{"1", "a"}, {"2", "b"}, {"3", "c"}}
	tests := []struct {
		name    string
		setup   func(ctx context.Context, st *dataset.MemStore) error
		width   int
		wantErr error
	}{
		{"more rows recorded than stored", func(ctx context.Context, st *dataset.MemStore) error {
			return putWithCounts(ctx, st, rows, 0, 1)
		}, 2, dataset.ErrCorrupt},
		{"fewer rows recorded than stored", func(ctx context.Context, st *dataset.MemStore) error {
			return putWithCounts(ctx, st, rows, 0, -1)
		}, 2, dataset.ErrCorrupt},
		{"rows recorded, no chunks", func(ctx context.Context, st *dataset.MemStore) error {
			return st.Finish(ctx, "d", 0, 5)
		}, 2, dataset.ErrCorrupt},
		{"more chunks recorded than stored", func(ctx context.Context, st *dataset.MemStore) error {
			return putWithCounts(ctx, st, rows, 1, 0)
		}, 2, dataset.ErrMissing},
		{"width differs", func(ctx context.Context, st *dataset.MemStore) error {
			return st.Put(ctx, "d", 64, rows)
		}, 3, dataset.ErrCorrupt},
		{"rows of different widths", func(ctx context.Context, st *dataset.MemStore) error {
			return st.Put(ctx, "d", 64, [][]string{{"1", "a"}, {"2", "b", "extra"}})
		}, 2, dataset.ErrCorrupt},
		{"field longer than the chunk", func(ctx context.Context, st *dataset.MemStore) error {
			// 2 fields; the first claims 9 bytes but only "1" follows.
			if err := st.PutChunk(ctx, "d", 0, chunk([]byte{2, 9, '1'})); err != nil {
				return err
			}
			return st.Finish(ctx, "d", 1, 1)
		}, 2, dataset.ErrCorrupt},
		{"truncated length", func(ctx context.Context, st *dataset.MemStore) error {
			if err := st.PutChunk(ctx, "d", 0, chunk([]byte{2, 0x80})); err != nil {
				return err
			}
			return st.Finish(ctx, "d", 1, 1)
		}, 2, dataset.ErrCorrupt},
		{"unknown chunk format", func(ctx context.Context, st *dataset.MemStore) error {
			if err := st.PutChunk(ctx, "d", 0, []byte{2, 2, 1, '1', 1, 'a'}); err != nil {
				return err
			}
			return st.Finish(ctx, "d", 1, 1)
		}, 2, dataset.ErrCorrupt},
		{"not DEFLATE", func(ctx context.Context, st *dataset.MemStore) error {
			if err := st.PutChunk(ctx, "d", 0, []byte{1, 0xff, 0xff, 0xff}); err != nil {
				return err
			}
			return st.Finish(ctx, "d", 1, 1)
		}, 2, dataset.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := dataset.NewMemStore()
			if err := tt.setup(ctx, st); err != nil {
				t.Fatal(err)
			}
			if _, err := readAll(ctx, st, "d", tt.width); !errors.Is(err, tt.wantErr) {
				t.Errorf("reading: %v, want an error wrapping %v", err, tt.wantErr)
			}
		})
	}
}

// putWithCounts writes rows one per chunk and records counts off by the deltas.
func putWithCounts(ctx context.Context, st *dataset.MemStore, rows [][]string, dChunks, dRows int64) error {
	w := dataset.NewWriter(ctx, st, "d", 1)
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			return err
		}
	}
	c, n, err := w.Close()
	if err != nil {
		return err
	}
	return st.Finish(ctx, "d", c+dChunks, n+dRows)
}

func TestMetaMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := dataset.NewMemStore()
	// Chunks without Finish are not a dataset yet.
	w := dataset.NewWriter(ctx, st, "d", 1)
	if err := w.Write([]string{"1", "a"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d", "never.written"} {
		if _, err := dataset.Open(ctx, st, name, 2); !errors.Is(err, dataset.ErrMissing) {
			t.Errorf("Open(%s) = %v, want ErrMissing", name, err)
		}
	}
}

type failingStore struct {
	*dataset.MemStore
	err error
}

func (f failingStore) PutChunk(context.Context, string, int64, []byte) error { return f.err }
func (f failingStore) GetChunk(context.Context, string, int64) ([]byte, error) {
	return nil, f.err
}

func TestStoreErrorsPropagate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boom := errors.New("redis down")
	st := failingStore{dataset.NewMemStore(), boom}

	w := dataset.NewWriter(ctx, st, "d", 1)
	if err := w.Write([]string{"1", "a"}); !errors.Is(err, boom) {
		t.Errorf("Write with a full chunk = %v, want the store's error", err)
	}
	w = dataset.NewWriter(ctx, st, "d", 0)
	if err := w.Write([]string{"1", "a"}); err != nil {
		t.Errorf("Write below the limit = %v, want nil (nothing put yet)", err)
	}
	if _, _, err := w.Close(); !errors.Is(err, boom) {
		t.Errorf("Close = %v, want the store's error", err)
	}

	if err := st.Finish(ctx, "d", 1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(ctx, st, "d", 2); !errors.Is(err, boom) {
		t.Errorf("reading = %v, want the store's error", err)
	}
}

func TestFieldNames(t *testing.T) {
	t.Parallel()
	got := []string{
		dataset.ChunkField("plt_fund.vs_withdraw.user_id", 0),
		dataset.ChunkField("plt_fund.vs_withdraw.user_id", 12),
		dataset.ChunksField("plt_fund.vs_withdraw.user_id"),
		dataset.RowsField("plt_fund.vs_withdraw.user_id"),
	}
	want := []string{
		"plt_fund.vs_withdraw.user_id#0",
		"plt_fund.vs_withdraw.user_id#12",
		"plt_fund.vs_withdraw.user_id#chunks",
		"plt_fund.vs_withdraw.user_id#rows",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("field names (-want +got):\n%s", diff)
	}
}

// TestMemStoreCopiesChunks guards the Writer, which reuses its buffer
// after each PutChunk: a store must not keep the caller's slice.
func TestMemStoreCopiesChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := dataset.NewMemStore()
	b := []byte("1,a\n")
	if err := st.PutChunk(ctx, "d", 0, b); err != nil {
		t.Fatal(err)
	}
	copy(b, "9,z\n")
	got, err := st.GetChunk(ctx, "d", 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "1,a\n" {
		t.Errorf("chunk = %q after the caller reused its slice, want %q", got, "1,a\n")
	}
	if _, err := st.GetChunk(ctx, "d", 1); !errors.Is(err, dataset.ErrMissing) {
		t.Errorf("GetChunk of a missing chunk = %v, want ErrMissing", err)
	}
}

// Rows of one empty field are rows too (a CSV line for them would be blank
// and skipped).
func TestEmptySingleFieldRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := dataset.NewMemStore()
	want := [][]string{{""}, {""}, {"x"}}
	if err := st.Put(ctx, "d", 0, want); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(ctx, st, "d", 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// WriteJoined stores exactly what Write stores for the same fields,
// chunk for chunk, empty fields and limits included.
func TestWriteJoinedIsWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rows := append(slices.Clone(awkward), []string{}, []string{"", "", ""}, []string{strings.Repeat("x", 300), "y", ""})
	for _, limit := range []int{1, 40, 0} {
		a, b := &chunkStore{MemStore: dataset.NewMemStore()}, &chunkStore{MemStore: dataset.NewMemStore()}
		wa, wb := dataset.NewWriter(ctx, a, "d", limit), dataset.NewWriter(ctx, b, "d", limit)
		for _, r := range rows {
			var fields []byte
			var ends []int
			for _, f := range r {
				fields = append(fields, f...)
				ends = append(ends, len(fields))
			}
			if err := wa.Write(r); err != nil {
				t.Fatal(err)
			}
			if err := wb.WriteJoined(fields, ends); err != nil {
				t.Fatal(err)
			}
		}
		ca, na, errA := wa.Close()
		cb, nb, errB := wb.Close()
		if errA != nil || errB != nil || ca != cb || na != nb {
			t.Fatalf("limit %d: Close = %d, %d, %v and %d, %d, %v", limit, ca, na, errA, cb, nb, errB)
		}
		if len(a.chunks) < 2 && limit != 0 {
			t.Errorf("limit %d: %d chunks, want several", limit, len(a.chunks))
		}
		if diff := cmp.Diff(a.chunks, b.chunks); diff != "" {
			t.Errorf("limit %d: chunks (-Write +WriteJoined):\n%s", limit, diff)
		}
	}
}
