package output_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/output"
)

func TestWriter(t *testing.T) {
	t.Parallel()
	header := []string{"withdraw_id", "user_id", "status"}
	format := output.Format{Columns: []output.Column{{Name: "withdraw_id"}, {Name: "user_id"}, {Name: "status", Escape: true}}}
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
			w, err := output.NewCSV(&buf, format)
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
	w, err := output.NewCSV(&buf, output.Format{Columns: []output.Column{{Name: "id"}, {Name: "text", Escape: true}}})
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
	w, err := output.NewCSV(failWriter{boom}, output.Format{Columns: []output.Column{{Name: "a"}}})
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

// escFormat has one escaped and one plain column, with header names that
// would be escaped if the header were (it never is).
var escFormat = output.Format{Columns: []output.Column{{Name: "=text", Escape: true}, {Name: "-plain"}}}

func TestFormulaEscaping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       []string // text, plain
		wantCell []string // what a CSV reader reads back
		wantLine string   // the exact data line
	}{
		{"equals", []string{"=1+2", "=1+2"}, []string{"'=1+2", "=1+2"}, "'=1+2,=1+2\n"},
		{"plus", []string{"+cmd", "+cmd"}, []string{"'+cmd", "+cmd"}, "'+cmd,+cmd\n"},
		{"minus", []string{"-US", "-12.50"}, []string{"'-US", "-12.50"}, "'-US,-12.50\n"},
		{"at", []string{"@SUM(A1)", "@SUM(A1)"}, []string{"'@SUM(A1)", "@SUM(A1)"}, "'@SUM(A1),@SUM(A1)\n"},
		// A leading tab makes encoding/csv quote the plain cell; the
		// escaped one starts with ' and needs no quotes.
		{"tab", []string{"\tSUCCESS", "\tx"}, []string{"'\tSUCCESS", "\tx"}, "'\tSUCCESS,\"\tx\"\n"},
		{"carriage return", []string{"\rPENDING", "\rx"}, []string{"'\rPENDING", "\rx"}, "\"'\rPENDING\",\"\rx\"\n"},
		{"escape and quoting together", []string{`=HYPERLINK("http`, "1"}, []string{`'=HYPERLINK("http`, "1"}, "\"'=HYPERLINK(\"\"http\",1\n"},
		{"escape and comma", []string{"=A1,B1", "1"}, []string{"'=A1,B1", "1"}, "\"'=A1,B1\",1\n"},
		{"trigger not at the start", []string{"A=1+2@B", "1-2"}, []string{"A=1+2@B", "1-2"}, "A=1+2@B,1-2\n"},
		{"plain text", []string{"SUCCESS", "12.50"}, []string{"SUCCESS", "12.50"}, "SUCCESS,12.50\n"},
		{"empty", []string{"", ""}, []string{"", ""}, ",\n"},
		{"already quoted is left alone", []string{"'=1", "'=1"}, []string{"'=1", "'=1"}, "'=1,'=1\n"},
		{"leading space is not a trigger", []string{" =1", "x"}, []string{" =1", "x"}, "\" =1\",x\n"},
		{"non-ASCII start", []string{"＝1", "x"}, []string{"＝1", "x"}, "＝1,x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w, err := output.NewCSV(&buf, escFormat)
			if err != nil {
				t.Fatal(err)
			}
			row := slices.Clone(tt.in)
			if err := w.Write(row); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.in, row); diff != "" {
				t.Errorf("Write modified the caller's row (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff("=text,-plain\n"+tt.wantLine, buf.String()); diff != "" {
				t.Errorf("CSV (-want +got):\n%s", diff)
			}
			got, err := csv.NewReader(&buf).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([][]string{{"=text", "-plain"}, tt.wantCell}, got); diff != "" {
				t.Errorf("CSV read back (-want +got):\n%s", diff)
			}
		})
	}
}

func TestByteOrderMark(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		bom  bool
		want string
	}{
		{"off by default", false, "name,amount\nMüller,-1.00\n"},
		{"on", true, "\xEF\xBB\xBFname,amount\nMüller,-1.00\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w, err := output.NewCSV(&buf, output.Format{Columns: []output.Column{{Name: "name", Escape: true}, {Name: "amount"}}, BOM: tt.bom})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write([]string{"Müller", "-1.00"}); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, buf.String()); diff != "" {
				t.Errorf("CSV (-want +got):\n%s", diff)
			}
			if n := strings.Count(buf.String(), "\uFEFF"); n != map[bool]int{false: 0, true: 1}[tt.bom] {
				t.Errorf("%d byte-order marks in the file", n)
			}
		})
	}
	if (output.Format{}).BOM {
		t.Error("the zero Format has a byte-order mark")
	}
}

// An empty result with a byte-order mark is the mark and the header.
func TestByteOrderMarkEmpty(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := output.NewCSV(&buf, output.Format{Columns: []output.Column{{Name: "a"}}, BOM: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "\xEF\xBB\xBFa\n"; got != want {
		t.Errorf("CSV = %q, want %q", got, want)
	}
}

func TestRowWidthChecked(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := output.NewCSV(&buf, escFormat)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range [][]string{{"1"}, {"1", "2", "3"}} {
		if err := w.Write(row); err == nil {
			t.Errorf("Write(%q) with 2 columns declared: no error", row)
		}
	}
	if w.Rows() != 0 {
		t.Errorf("Rows() = %d after rejected rows", w.Rows())
	}
}

func TestNoColumns(t *testing.T) {
	t.Parallel()
	if _, err := output.NewCSV(io.Discard, output.Format{}); err == nil {
		t.Error("New with no columns: no error")
	}
}

func TestFormatHeader(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff([]string{"=text", "-plain"}, escFormat.Header()); diff != "" {
		t.Errorf("Header() (-want +got):\n%s", diff)
	}
}

// The writer frames records exactly as encoding/csv's default Writer does,
// byte for byte, formula escaping aside (which it applies first, to the
// escaped columns' cells): cells are the input split at NUL, escape's bits
// say which columns are escaped.
func FuzzCSVFramingIsEncodingCSV(f *testing.F) {
	for _, seed := range []string{
		"plain\x00 leading space\x00\ttab\x00\\.\x00a,b\x00say \"hi\"\x00line\nbreak\x00cr\rlf\x00",
		"=1+2\x00-3\x00@x\x00+\"q\"\x00\r\n\x00\u00a0nbsp\x00\u3000ideographic\x00\x00",
		"\"\x00\"\"\x00,\x00 \x00\\.x\x00'\x00",
		"",
	} {
		f.Add(seed, uint8(0))
		f.Add(seed, uint8(0xff))
		f.Add(seed, uint8(0x55))
	}
	// Every ASCII byte leading a cell (needsQuotes decides a leading space
	// from the byte alone), 8 cells a seed.
	for c := 1; c < utf8.RuneSelf; c += 8 {
		var cells []string
		for b := c; b < c+8 && b < utf8.RuneSelf; b++ {
			cells = append(cells, string(rune(b))+"x")
		}
		f.Add(strings.Join(cells, "\x00"), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in string, escape uint8) {
		cells := strings.Split(in, "\x00")
		if len(cells) > 8 {
			cells = cells[:8]
		}
		format := output.Format{}
		want := make([]string, len(cells))
		for i, c := range cells {
			esc := escape&(1<<i) != 0
			format.Columns = append(format.Columns, output.Column{Name: c, Escape: esc})
			want[i] = c
			if esc && c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				want[i] = "'" + c
			}
		}
		var ref bytes.Buffer
		cw := csv.NewWriter(&ref)
		if err := cw.Write(format.Header()); err != nil {
			t.Skip() // encoding/csv refuses nothing for the comma; a guard
		}
		if err := cw.Write(want); err != nil {
			t.Skip()
		}
		cw.Flush()
		var got bytes.Buffer
		w, err := output.NewCSV(&got, format)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(cells); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if got.String() != ref.String() {
			t.Errorf("cells %q escape %08b:\n got %q\nwant %q", cells, escape, got.String(), ref.String())
		}
	})
}
