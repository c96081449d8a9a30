package output_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/output"
)

func TestWriter(t *testing.T) {
	t.Parallel()
	header := []string{"withdraw_id", "user_id", "status"}
	tests := []struct {
		name string
		rows [][]string
		want string
	}{
		{"empty result is the header line only", nil, "withdraw_id,user_id,status\n"},
		{"plain rows", [][]string{{"101", "1", "SUCCESS"}, {"102", "2", "PENDING"}},
			"withdraw_id,user_id,status\n101,1,SUCCESS\n102,2,PENDING\n"},
		{"comma", [][]string{{"101", "1", "FAILED,RETRY"}},
			"withdraw_id,user_id,status\n101,1,\"FAILED,RETRY\"\n"},
		{"quote", [][]string{{"101", "1", `NEEDS"REVIEW`}},
			"withdraw_id,user_id,status\n101,1,\"NEEDS\"\"REVIEW\"\n"},
		{"newline", [][]string{{"101", "1", "two\nlines"}},
			"withdraw_id,user_id,status\n101,1,\"two\nlines\"\n"},
		{"leading space", [][]string{{"101", " 1", "x "}},
			"withdraw_id,user_id,status\n101,\" 1\",x \n"},
		{"empty fields", [][]string{{"", "", ""}},
			"withdraw_id,user_id,status\n,,\n"},
		{"unicode untouched", [][]string{{"101", "日本語", "💸"}},
			"withdraw_id,user_id,status\n101,日本語,💸\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w, err := output.NewCSV(&buf, header)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.rows {
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, buf.String()); diff != "" {
				t.Errorf("CSV (-want +got):\n%s", diff)
			}
			if w.Rows() != int64(len(tt.rows)) {
				t.Errorf("Rows() = %d, want %d (header excluded)", w.Rows(), len(tt.rows))
			}
			if strings.Contains(buf.String(), "\r") {
				t.Errorf("CSV has CR line endings")
			}
			// What encoding/csv reads back is exactly what went in.
			got, err := csv.NewReader(&buf).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(append([][]string{header}, tt.rows...), got); diff != "" {
				t.Errorf("CSV read back (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWriterLarge crosses the 64 KiB buffer many times.
func TestWriterLarge(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := output.NewCSV(&buf, []string{"id", "text"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	for i := range n {
		if err := w.Write([]string{fmt.Sprint(i), "a,\"quoted\" value"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n+1 || rows[n][0] != fmt.Sprint(n-1) || w.Rows() != n {
		t.Errorf("read %d records (last %v), Rows() %d; want header + %d", len(rows), rows[len(rows)-1], w.Rows(), n)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestFlushReportsWriteErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("upload aborted")
	w, err := output.NewCSV(failWriter{boom}, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]string{"1"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Errorf("Flush = %v, want the writer's error", err)
	}
}
