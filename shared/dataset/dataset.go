// Package dataset stores a stream of rows as numbered chunks of bounded size,
// so no single Redis value, and no reader or writer, ever holds a whole
// dataset. Inside a chunk each row is its field count, then each field's
// length and bytes (uvarints): compact, fast, and every byte of every field
// survives (CSV would turn "\r\n" inside a field into "\n"); each chunk is
// compressed, its first byte naming the codec. The limit bounds a chunk's
// rows before compression.
//
// Two codecs, both from github.com/klauspost/compress, and a reader reads
// either (README, "Chunk compression"):
//   - S2 (format byte 2), what a Writer writes: on vs_withdraw rows in key
//     order it compresses about 3 times and decompresses about 10 times
//     faster than DEFLATE, for chunks about 1.5 times larger (ratio 2.2
//     against 3.3). A listener and the aggregator spend their CPU on every
//     row, and Redis holds only the parts in flight.
//   - DEFLATE (format byte 1), what every version before S2 wrote, and what
//     a Writer still writes with SetCodec(Deflate): for a report the
//     previous deployment dispatched, whose other functions may not read S2.
package dataset

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/s2"

	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/fault"
)

// DefaultChunkBytes bounds one chunk. Just under 256 KiB keeps Redis values
// small (and inside jemalloc's 256 KiB size class: a value of exactly 256 KiB
// plus Redis's header is rounded up to 320 KiB) and
// round trips few (a million 60-byte rows make about 230 chunks).
const DefaultChunkBytes = 255 << 10

// MaxChunkBytes bounds one chunk inflated, for writers and readers alike:
// a reader never inflates more, so a crafted chunk cannot make it allocate
// without limit (1.4 MB of DEFLATE inflated to 256 MB, and a reader took
// 1 GB, before this bound). Four times the default leaves room for a
// larger CHUNK_BYTES and for a row of up to 1 MiB; today's sources' rows
// are under 100 bytes.
const MaxChunkBytes = 1 << 20

// ErrRowTooLarge reports a row whose encoding exceeds MaxChunkBytes: no
// chunk can hold it. Retrying cannot fix it.
var ErrRowTooLarge = fault.Permanent(failreason.RowTooLarge.Sentinel())

// Store keeps the chunks of named datasets.
type Store interface {
	// PutChunk stores chunk i of dataset name.
	PutChunk(ctx context.Context, name string, i int64, data []byte) error
	// GetChunk returns chunk i of dataset name.
	GetChunk(ctx context.Context, name string, i int64) ([]byte, error)
	// Meta returns the chunk and row counts recorded when name was finished.
	Meta(ctx context.Context, name string) (chunks, rows int64, err error)
}

// WriteStore can also record a finished dataset's counts.
type WriteStore interface {
	Store
	// Finish records the chunk and row counts of name, making it readable.
	Finish(ctx context.Context, name string, chunks, rows int64) error
}

// ErrMissing reports a dataset (or chunk) that is not in the store of a
// live report. Retrying cannot bring it back, so it is permanent.
var ErrMissing = fault.Permanent(failreason.DatasetMissing.Sentinel())

// ErrCorrupt reports a dataset whose content breaks its contract (bad
// encoding, wrong counts, rows out of key order). Retrying cannot fix it.
var ErrCorrupt = fault.Permanent(failreason.DatasetCorrupt.Sentinel())

// ChunkField is the hash field of chunk i: "plt_fund.vs_withdraw.user_id#3".
func ChunkField(name string, i int64) string { return fmt.Sprintf("%s#%d", name, i) }

// ChunksField holds the number of chunks of name.
func ChunksField(name string) string { return name + "#chunks" }

// RowsField holds the number of rows of name.
func RowsField(name string) string { return name + "#rows" }

// Writer splits rows into chunks and puts each one as soon as it is full.
type Writer struct {
	ctx     context.Context
	store   Store
	name    string
	limit   int
	buf     bytes.Buffer
	chunks  int64
	rows    int64
	scratch [binary.MaxVarintLen64]byte
	codec   Codec
	zbuf    []byte
	zw      *flate.Writer
}

// Codec is how a Writer compresses its chunks: the chunk's format byte.
type Codec byte

const (
	// Deflate is DEFLATE at its fastest level: what versions before S2
	// wrote, and all they read.
	Deflate Codec = 1
	// S2 is klauspost/compress's S2 (a faster Snappy): the default.
	S2 Codec = 2
)

// NewWriter writes dataset name into store in chunks of about limit bytes
// (DefaultChunkBytes when limit is 0 or less, at most MaxChunkBytes).
func NewWriter(ctx context.Context, store Store, name string, limit int) *Writer {
	if limit <= 0 {
		limit = DefaultChunkBytes
	}
	limit = min(limit, MaxChunkBytes)
	return &Writer{ctx: ctx, store: store, name: name, limit: limit, codec: S2}
}

// String is the codec's name in logs: "s2" or "deflate".
func (c Codec) String() string {
	switch c {
	case S2:
		return "s2"
	case Deflate:
		return "deflate"
	}
	return fmt.Sprintf("codec(%d)", byte(c))
}

// CodecNamed is the codec a report's messages name (their Chunks): "s2"
// is S2; anything else, an empty name above all (a report the previous
// deployment dispatched, whose aggregator may read only DEFLATE), is
// Deflate.
func CodecNamed(name string) Codec {
	if name == S2.String() {
		return S2
	}
	return Deflate
}

// SetCodec makes w write its chunks with c (S2 unless set). Call it before
// the first Write.
func (w *Writer) SetCodec(c Codec) { w.codec = c }

// Write appends one row.
func (w *Writer) Write(row []string) error {
	prev := w.buf.Len()
	w.length(len(row))
	for _, f := range row {
		w.length(len(f))
		w.buf.WriteString(f)
	}
	return w.added(prev)
}

// WriteJoined appends one row whose fields lie end to end in fields, field
// i ending at ends[i]: the row Write would get from the fields as strings,
// without making them.
func (w *Writer) WriteJoined(fields []byte, ends []int) error {
	prev := w.buf.Len()
	w.length(len(ends))
	start := 0
	for _, end := range ends {
		w.length(end - start)
		w.buf.Write(fields[start:end])
		start = end
	}
	return w.added(prev)
}

// length appends n as a uvarint: one byte below 128, as most are.
func (w *Writer) length(n int) {
	if n < 0x80 {
		w.buf.WriteByte(byte(n))
		return
	}
	w.buf.Write(binary.AppendUvarint(w.scratch[:0], uint64(n)))
}

// added takes the row encoded in buf from prev on: it refuses a row no
// chunk can hold, and puts the chunk when the row fills it.
func (w *Writer) added(prev int) error {
	if n := w.buf.Len() - prev; n > MaxChunkBytes {
		w.buf.Truncate(prev)
		return fmt.Errorf("%w: %s row %d: %d bytes encoded, at most %d", ErrRowTooLarge, w.name, w.rows, n, MaxChunkBytes)
	}
	w.rows++
	if w.buf.Len() > w.limit && prev > 0 {
		// The row does not fit: put the chunk without it and carry it over,
		// so chunks stay within the limit (only a row larger than the limit
		// makes a larger chunk, on its own).
		if err := w.put(w.buf.Bytes()[:prev]); err != nil {
			return err
		}
		rest := w.buf.Bytes()[prev:]
		w.buf.Reset()
		w.buf.Write(rest) // copy handles the overlap
	}
	if w.buf.Len() >= w.limit {
		return w.flush()
	}
	return nil
}

func (w *Writer) flush() error {
	if w.buf.Len() == 0 {
		return nil
	}
	if err := w.put(w.buf.Bytes()); err != nil {
		return err
	}
	w.buf.Reset()
	return nil
}

// put compresses raw rows into the next chunk: a format byte, then the
// codec's stream. Either codec shrinks these rows two- to threefold (Redis
// memory is what a deployment pays for) for little CPU.
func (w *Writer) put(raw []byte) error {
	w.zbuf = append(w.zbuf[:0], byte(w.codec))
	switch w.codec {
	case S2:
		// Encode into the buffer's spare room, grown once to the bound.
		need := 1 + s2.MaxEncodedLen(len(raw))
		if cap(w.zbuf) < need {
			w.zbuf = append(make([]byte, 0, need), w.zbuf...)
		}
		w.zbuf = w.zbuf[:1+len(s2.Encode(w.zbuf[1:need], raw))]
	case Deflate:
		b := bytes.NewBuffer(w.zbuf)
		if w.zw == nil {
			w.zw, _ = flate.NewWriter(b, flate.BestSpeed) // only fails for a bad level
		} else {
			w.zw.Reset(b)
		}
		if _, err := w.zw.Write(raw); err != nil {
			return fmt.Errorf("dataset %s: compress: %w", w.name, err)
		}
		if err := w.zw.Close(); err != nil {
			return fmt.Errorf("dataset %s: compress: %w", w.name, err)
		}
		w.zbuf = b.Bytes()
	default:
		return fmt.Errorf("dataset %s: unknown codec %v", w.name, w.codec)
	}
	if err := w.store.PutChunk(w.ctx, w.name, w.chunks, w.zbuf); err != nil {
		return err
	}
	w.chunks++
	return nil
}

// Close puts the last chunk and returns the counts to record with the dataset.
func (w *Writer) Close() (chunks, rows int64, err error) {
	if err := w.flush(); err != nil {
		return 0, 0, err
	}
	return w.chunks, w.rows, nil
}

// Reader streams the rows of a finished dataset, one chunk in memory at a time.
type Reader struct {
	ctx    context.Context
	store  Store
	name   string
	width  int
	chunks int64
	rows   int64
	next   int64
	seen   int64
	chunk  []byte // the rest of the current chunk
	row    []string
	fields [][]byte
	raw    []byte        // the current chunk, inflated
	zr     io.ReadCloser // reused decompressor
}

// Open starts reading dataset name; every row must have width fields.
func Open(ctx context.Context, store Store, name string, width int) (*Reader, error) {
	chunks, rows, err := store.Meta(ctx, name)
	if err != nil {
		return nil, err
	}
	return &Reader{ctx: ctx, store: store, name: name, width: width, chunks: chunks, rows: rows}, nil
}

// Rows is the row count recorded when the dataset was finished.
func (r *Reader) Rows() int64 { return r.rows }

// Next returns the next row, or io.EOF after the last one. The slice is
// reused by the following call.
func (r *Reader) Next() ([]string, error) {
	fields, err := r.NextBytes()
	if err != nil {
		return nil, err
	}
	r.row = Strings(r.row[:0], fields)
	return r.row, nil
}

// Strings appends fields to dst as strings: one allocation for the whole
// row (the fields lie end to end), sliced, not one per field.
func Strings(dst []string, fields [][]byte) []string {
	n := 0
	for _, f := range fields {
		n += len(f)
	}
	var whole strings.Builder
	whole.Grow(n)
	for _, f := range fields {
		whole.Write(f)
	}
	s, start := whole.String(), 0
	for _, f := range fields {
		dst = append(dst, s[start:start+len(f)])
		start += len(f)
	}
	return dst
}

// NextBytes is Next without strings: the fields are slices of the
// reader's buffer, valid only until the following call. A caller that
// keeps few of the rows it reads (a join) makes strings of those alone.
func (r *Reader) NextBytes() ([][]byte, error) {
	// The chunk is walked in a local and stored back once: a field of the
	// Reader written per field costs a GC write barrier each time.
	chunk := r.chunk
	for len(chunk) == 0 {
		if r.next >= r.chunks {
			if r.seen != r.rows {
				return nil, fmt.Errorf("%w: %s: read %d rows, %d recorded", ErrCorrupt, r.name, r.seen, r.rows)
			}
			return nil, io.EOF
		}
		data, err := r.store.GetChunk(r.ctx, r.name, r.next)
		if err != nil {
			return nil, err
		}
		r.next++
		if chunk, err = r.inflate(data); err != nil {
			return nil, err
		}
	}
	n, chunk, ok := uvarint(chunk)
	if !ok {
		return nil, r.badLength()
	}
	if int(n) != r.width {
		return nil, fmt.Errorf("%w: %s chunk %d row %d: %d fields, want %d", ErrCorrupt, r.name, r.next-1, r.seen, n, r.width)
	}
	fields := r.fields[:0]
	for range n {
		var l uint64
		if l, chunk, ok = uvarint(chunk); !ok {
			return nil, r.badLength()
		}
		if l > uint64(len(chunk)) {
			return nil, fmt.Errorf("%w: %s chunk %d row %d: field overruns the chunk", ErrCorrupt, r.name, r.next-1, r.seen)
		}
		fields = append(fields, chunk[:l:l])
		chunk = chunk[l:]
	}
	r.chunk, r.fields = chunk, fields
	r.seen++
	return fields, nil
}

// inflate decompresses a chunk into the reader's reused buffer, which
// never grows past MaxChunkBytes+1: a chunk that inflates further is
// corrupt, however few bytes it was stored in.
func (r *Reader) inflate(data []byte) ([]byte, error) {
	if len(data) > 0 && data[0] == byte(S2) {
		return r.decodeS2(data[1:])
	}
	if len(data) == 0 || data[0] != byte(Deflate) {
		return nil, fmt.Errorf("%w: %s chunk %d: unknown chunk format", ErrCorrupt, r.name, r.next-1)
	}
	src := bytes.NewReader(data[1:])
	if r.zr == nil {
		r.zr = flate.NewReader(src)
	} else if err := r.zr.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, fmt.Errorf("%w: %s chunk %d: %v", ErrCorrupt, r.name, r.next-1, err)
	}
	buf := r.raw[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) > MaxChunkBytes {
				r.raw = buf[:0]
				return nil, fmt.Errorf("%w: %s chunk %d: inflates past %d bytes", ErrCorrupt, r.name, r.next-1, MaxChunkBytes)
			}
			// Double, from 64 KiB, up to one byte past the limit: enough
			// to tell a chunk of exactly MaxChunkBytes from a larger one.
			grown := make([]byte, len(buf), min(max(2*cap(buf), 64<<10), MaxChunkBytes+1))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.zr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.raw = buf[:0]
			return nil, fmt.Errorf("%w: %s chunk %d: %v", ErrCorrupt, r.name, r.next-1, err)
		}
	}
	r.raw = buf[:0]
	if len(buf) > MaxChunkBytes {
		return nil, fmt.Errorf("%w: %s chunk %d: inflates past %d bytes", ErrCorrupt, r.name, r.next-1, MaxChunkBytes)
	}
	return buf, nil
}

// decodeS2 decodes an S2 block. Its header states the decoded length, which
// is checked against MaxChunkBytes before anything is allocated.
func (r *Reader) decodeS2(src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %s chunk %d: %v", ErrCorrupt, r.name, r.next-1, err)
	}
	if n > MaxChunkBytes {
		return nil, fmt.Errorf("%w: %s chunk %d: inflates past %d bytes", ErrCorrupt, r.name, r.next-1, MaxChunkBytes)
	}
	if cap(r.raw) < n {
		r.raw = make([]byte, 0, max(n, 64<<10))
	}
	buf, err := s2.Decode(r.raw[:n], src)
	if err != nil {
		return nil, fmt.Errorf("%w: %s chunk %d: %v", ErrCorrupt, r.name, r.next-1, err)
	}
	return buf, nil
}

// uvarint reads a length or count off the front of b.
func uvarint(b []byte) (uint64, []byte, bool) {
	// Field lengths and counts are almost always under 128: one byte.
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), b[1:], true
	}
	v, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, b, false
	}
	return v, b[k:], true
}

func (r *Reader) badLength() error {
	return fmt.Errorf("%w: %s chunk %d row %d: bad length", ErrCorrupt, r.name, r.next-1, r.seen)
}

// MemStore is an in-memory Store for unit tests and benchmarks of the joins.
type MemStore struct {
	chunks map[string][]byte
	meta   map[string][2]int64
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{chunks: map[string][]byte{}, meta: map[string][2]int64{}}
}

// PutChunk implements Store.
func (m *MemStore) PutChunk(_ context.Context, name string, i int64, data []byte) error {
	m.chunks[ChunkField(name, i)] = bytes.Clone(data)
	return nil
}

// GetChunk implements Store.
func (m *MemStore) GetChunk(_ context.Context, name string, i int64) ([]byte, error) {
	d, ok := m.chunks[ChunkField(name, i)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrMissing, ChunkField(name, i))
	}
	return d, nil
}

// Meta implements Store.
func (m *MemStore) Meta(_ context.Context, name string) (int64, int64, error) {
	v, ok := m.meta[name]
	if !ok {
		return 0, 0, fmt.Errorf("%w: %s", ErrMissing, name)
	}
	return v[0], v[1], nil
}

// Finish implements WriteStore.
func (m *MemStore) Finish(_ context.Context, name string, chunks, rows int64) error {
	m.meta[name] = [2]int64{chunks, rows}
	return nil
}

// Put writes rows as dataset name with the given chunk limit and finishes it.
func (m *MemStore) Put(ctx context.Context, name string, limit int, rows [][]string) error {
	w := NewWriter(ctx, m, name, limit)
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			return err
		}
	}
	c, n, err := w.Close()
	if err != nil {
		return err
	}
	return m.Finish(ctx, name, c, n)
}
