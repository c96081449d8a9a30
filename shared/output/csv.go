// Package output is where a report ends up: the project's one CSV writer
// and the Cloud Storage object it streams into.
package output

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
)

// CSVWriter is the one CSV writer of the project: encoding/csv's default
// framing (comma, LF after every record, its quoting rules), header first,
// buffered, counting data rows.
type CSVWriter struct {
	buf  *bufio.Writer
	csv  *csv.Writer
	rows int64
}

// NewCSV writes the header and returns a CSVWriter for the data rows.
func NewCSV(w io.Writer, header []string) (*CSVWriter, error) {
	b := bufio.NewWriterSize(w, 64<<10)
	c := csv.NewWriter(b)
	if err := c.Write(header); err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	return &CSVWriter{buf: b, csv: c}, nil
}

// Write appends one data row.
func (w *CSVWriter) Write(row []string) error {
	if err := w.csv.Write(row); err != nil {
		return fmt.Errorf("csv row %d: %w", w.rows+1, err)
	}
	w.rows++
	return nil
}

// Rows is the number of data rows written (header excluded).
func (w *CSVWriter) Rows() int64 { return w.rows }

// Flush writes everything buffered to the underlying writer.
func (w *CSVWriter) Flush() error {
	w.csv.Flush()
	if err := w.csv.Error(); err != nil {
		return fmt.Errorf("csv flush: %w", err)
	}
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("csv flush: %w", err)
	}
	return nil
}
