// Package output is where a report ends up: the project's one CSV writer
// and the Cloud Storage object it streams into.
package output

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Column is one CSV column as a report declares it.
type Column struct {
	// Name is the column's header cell. Header cells are never escaped.
	Name string
	// Escape guards the column's cells against CSV formula injection
	// (OWASP): a cell starting with '=', '+', '-', '@', a tab or a carriage
	// return is written with a single quote in front, so a spreadsheet shows
	// it as text instead of running it. Declared per column, never derived
	// from the value's kind: a decimal such as "-12.50" is text in the code
	// but must stay a number, so only free-text columns set it.
	Escape bool
}

// Format declares one kind of CSV file: its columns in order and whether
// it starts with a byte-order mark.
type Format struct {
	Columns []Column
	// BOM writes the UTF-8 byte-order mark (EF BB BF) before the header:
	// some spreadsheets need it to read non-ASCII text as UTF-8.
	BOM bool
}

// Header is the column names, in order.
func (f Format) Header() []string {
	h := make([]string, len(f.Columns))
	for i, c := range f.Columns {
		h[i] = c.Name
	}
	return h
}

// bom is the UTF-8 encoding of U+FEFF.
const bom = "\xEF\xBB\xBF"

// CSVWriter streams a CSV to an io.Writer. Its framing is encoding/csv's
// default (comma, "\n" line ends, a cell quoted when it holds a comma, a
// quote, "\r" or "\n", starts with a space, or is `\.`; quotes doubled)
// byte for byte (FuzzCSVFramingIsEncodingCSV), written here without
// encoding/csv's second buffer and per-field checks: it was a fifth of
// the aggregator's CPU.
type CSVWriter struct {
	buf    *bufio.Writer
	escape []bool
	rows   int64
}

// NewCSV writes the byte-order mark if the format asks for one and the
// header, and returns a CSVWriter for the data rows.
func NewCSV(w io.Writer, f Format) (*CSVWriter, error) {
	cw, err := newCSV(w, f)
	if err != nil {
		return nil, err
	}
	if f.BOM {
		if _, err := cw.buf.WriteString(bom); err != nil {
			return nil, fmt.Errorf("csv byte-order mark: %w", err)
		}
	}
	cw.record(f.Header(), nil)
	return cw, nil
}

// NewSegmentCSV returns a CSVWriter for data rows only: no byte-order
// mark, no header. It writes one part of a report split into parts:
// f.Head() followed by the parts' segments in order is byte for byte what
// NewCSV writes for all their rows, because every record is framed
// on its own (each ends with "\n", and no state crosses records).
func NewSegmentCSV(w io.Writer, f Format) (*CSVWriter, error) {
	return newCSV(w, f)
}

// Head is what NewCSV writes before the first data row: the byte-order
// mark if the format asks for one, then the header line. It is the head
// that Store.Compose puts in front of the segments.
func (f Format) Head() ([]byte, error) {
	var b bytes.Buffer
	w, err := NewCSV(&b, f)
	if err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func newCSV(w io.Writer, f Format) (*CSVWriter, error) {
	if len(f.Columns) == 0 {
		return nil, errors.New("csv format declares no columns")
	}
	b := bufio.NewWriterSize(w, 64<<10)
	cw := &CSVWriter{buf: b, escape: make([]bool, len(f.Columns))}
	for i, col := range f.Columns {
		cw.escape[i] = col.Escape
	}
	return cw, nil
}

// Write appends one data row, which must have one field per column.
func (w *CSVWriter) Write(row []string) error {
	if len(row) != len(w.escape) {
		return fmt.Errorf("csv row %d: %d fields, the format declares %d columns", w.rows+1, len(row), len(w.escape))
	}
	w.record(row, w.escape)
	w.rows++
	return nil
}

// record writes one record, a cell escaped where escape says so (nil:
// none). A write error sticks in the bufio.Writer: Flush returns it.
func (w *CSVWriter) record(cells []string, escape []bool) {
	for i, v := range cells {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		if escape != nil && escape[i] && formulaStart(v) {
			v = "'" + v
		}
		if !needsQuotes(v) {
			w.buf.WriteString(v)
			continue
		}
		w.buf.WriteByte('"')
		for {
			j := strings.IndexByte(v, '"')
			if j < 0 {
				w.buf.WriteString(v)
				break
			}
			w.buf.WriteString(v[:j+1])
			w.buf.WriteByte('"')
			v = v[j+1:]
		}
		w.buf.WriteByte('"')
	}
	w.buf.WriteByte('\n')
}

// needsQuotes is encoding/csv's fieldNeedsQuotes for the comma.
func needsQuotes(v string) bool {
	if v == "" {
		return false
	}
	if v == `\.` {
		return true
	}
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\n', '\r', '"', ',':
			return true
		}
	}
	if c := v[0]; c < utf8.RuneSelf {
		// unicode.IsSpace of an ASCII byte, without decoding a rune.
		return c == ' ' || '\t' <= c && c <= '\r'
	}
	r, _ := utf8.DecodeRuneInString(v)
	return unicode.IsSpace(r)
}

// formulaStart reports whether a spreadsheet could read s as a formula:
// OWASP's list of leading characters.
func formulaStart(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// Rows is the number of data rows written (header excluded).
func (w *CSVWriter) Rows() int64 { return w.rows }

// Flush writes everything buffered to the underlying writer.
func (w *CSVWriter) Flush() error {
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("csv flush: %w", err)
	}
	return nil
}
