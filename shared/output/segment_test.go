package output_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/output"
)

// segFormat mixes escaped (free text) and plain columns.
var segFormat = output.Format{Columns: []output.Column{
	{Name: "user_id"}, {Name: "=tag", Escape: true}, {Name: "amount"}, {Name: "note", Escape: true},
}}

// cells are the shapes that make encoding/csv quote, double quotes, or
// the formula escape add a quote: every one must frame the same in a
// segment as in the single file.
var cells = []string{
	"", "plain", "a,b", `q"uote`, `"`, `""`, "two\nlines", "\n", "cr\rlf", "\r\n", "ends\r",
	"=1+2", "+cmd", "-US", "-12.50", "@SUM(A1)", "\tTAB", "\rPENDING", `=HYPERLINK("x")`, "=A1,B1",
	" lead", "trail ", `\.`, `\`, "日本語", "💸", "'=already", "\uFEFF", "a\x00b",
}

// rows returns n deterministic rows drawn from cells, with now and then a
// cell longer than the writer's 64 KiB buffer.
func rows(seed uint64, n int) [][]string {
	r := rand.New(rand.NewPCG(seed, 13))
	out := make([][]string, n)
	for i := range out {
		row := make([]string, len(segFormat.Columns))
		for j := range row {
			row[j] = cells[r.IntN(len(cells))]
			if r.IntN(500) == 0 {
				row[j] = strings.Repeat(cells[r.IntN(len(cells))]+"x", 70<<10/(len(row[j])+1))
			}
		}
		row[0] = fmt.Sprint(i) // the key: a plain number, as in the reports
		out[i] = row
	}
	return out
}

// single is today's one-writer CSV of rows.
func single(t testing.TB, f output.Format, rows [][]string) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := output.NewCSV(&b, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// segment is one part's CSV: rows with no byte-order mark and no header.
func segment(t testing.TB, f output.Format, rows [][]string) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := output.NewSegmentCSV(&b, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Rows() != int64(len(rows)) {
		t.Errorf("segment Rows() = %d, want %d", w.Rows(), len(rows))
	}
	return b.Bytes()
}

// split cuts n rows into parts: cuts are the boundaries, first 0, last n.
type split struct {
	name string
	cuts func(n int, r *rand.Rand) []int
}

var splits = []split{
	{"one part", func(n int, _ *rand.Rand) []int { return []int{0, n} }},
	{"a part per row", func(n int, _ *rand.Rand) []int {
		c := make([]int, n+1)
		for i := range c {
			c[i] = i
		}
		return c
	}},
	{"empty parts first, last and between", func(n int, _ *rand.Rand) []int {
		return []int{0, 0, 0, n / 3, n / 3, n / 2, n, n, n}
	}},
	{"random cuts", func(n int, r *rand.Rand) []int {
		c := []int{0}
		for i := 0; i < 40; i++ {
			c = append(c, r.IntN(n+1))
		}
		c = append(c, n)
		slices.Sort(c)
		return c
	}},
}

// The head followed by the segments of consecutive rows, in order, is
// byte for byte the single writer's file, with and without the
// byte-order mark, for every cell shape that changes framing, for empty
// parts anywhere and for a result with no rows at all.
func TestSegmentsConcatenateToTheSingleFile(t *testing.T) {
	t.Parallel()
	for _, bom := range []bool{false, true} {
		for _, n := range []int{0, 1, 7, 3000} {
			for _, sp := range splits {
				t.Run(fmt.Sprintf("bom=%v/%d rows/%s", bom, n, sp.name), func(t *testing.T) {
					t.Parallel()
					f := segFormat
					f.BOM = bom
					all := rows(uint64(n), n)
					want := single(t, f, all)
					got, err := f.Head()
					if err != nil {
						t.Fatal(err)
					}
					cuts := sp.cuts(n, rand.New(rand.NewPCG(uint64(n), 7)))
					for i := 0; i+1 < len(cuts); i++ {
						got = append(got, segment(t, f, all[cuts[i]:cuts[i+1]])...)
					}
					if !bytes.Equal(want, got) {
						t.Fatalf("head + %d segments differs from the single file at byte %d of %d/%d", len(cuts)-1, firstDiff(want, got), len(want), len(got))
					}
					// And it reads back as the rows, escaped cells quoted.
					back, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(got, []byte("\uFEFF")))).ReadAll()
					if err != nil {
						t.Fatal(err)
					}
					if len(back) != n+1 {
						t.Errorf("read back %d records, want header + %d", len(back), n)
					}
				})
			}
		}
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		bom  bool
		want string
	}{{false, "user_id,=tag,amount,note\n"}, {true, "\xEF\xBB\xBFuser_id,=tag,amount,note\n"}} {
		f := segFormat
		f.BOM = tt.bom
		got, err := f.Head()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, string(got)); diff != "" {
			t.Errorf("Head() with BOM %v (-want +got):\n%s", tt.bom, diff)
		}
	}
	if _, err := (output.Format{}).Head(); err == nil {
		t.Error("Head() of a format with no columns: no error")
	}
	if _, err := output.NewSegmentCSV(&bytes.Buffer{}, output.Format{}); err == nil {
		t.Error("NewSegmentCSV with no columns: no error")
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSegmentNames(t *testing.T) {
	t.Parallel()
	got := []string{output.SegmentPrefix(42), output.SegmentName(42, 0), output.SegmentName(42, 17), output.SegmentName(42, 999999)}
	want := []string{"tmp/reports/42/", "tmp/reports/42/part-000000.csv", "tmp/reports/42/part-000017.csv", "tmp/reports/42/part-999999.csv"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	// A record's prefix is not a prefix of another record's names.
	if strings.HasPrefix(output.SegmentName(420, 0), output.SegmentPrefix(42)) {
		t.Error("record 420's segment is under record 42's prefix")
	}
	// Names sort in part order, so a listing is in key order.
	if output.SegmentName(1, 9) > output.SegmentName(1, 10) {
		t.Error("segment names do not sort in part order")
	}
}
