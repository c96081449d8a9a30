package docs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExtractFixture runs the extractor over a small module that uses every
// construction it claims to read, and one it cannot.
func TestExtractFixture(t *testing.T) {
	t.Parallel()
	reasons, blind, err := Extract("testdata/fixture", "example.com/fixture", []string{"shared"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reasons {
		got = append(got, r.Key)
	}
	want := []string{
		"assigned {} reason",          // reason := fmt.Sprintf(…) passed to MarkFailed
		"bad thing happened",          // var ErrBad = fault.Permanent(errors.New(…))
		"bad thing happened: with",    // fmt.Errorf("%w: …", lib.ErrBad) made permanent
		"constant from lib",           // pkg.Const as the reason
		"first {} of two",             // fault.Permanentf
		"last error from",             // a later builder part
		"local constant reason",       // const in the same package
		"stage {} listener {} failed", // the builder's start
		"state gone",                  // builder WriteString
		"still running after",         // prefix + …, and Sprintf("%s: …", prefix)
		"too many rows",               // &T{} with an Error method
		"too many rows",               // var tm *T
		"wrapped prefix: {}",          // ParseParams-like constructor, through a helper
	}
	if diff := cmp.Diff(want, dedupeAdjacentPos(reasons, got)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	var gotBlind []string
	for _, b := range blind {
		gotBlind = append(gotBlind, blindKey(b))
	}
	if diff := cmp.Diff([]string{"shared/app/app.go errors.New(x)"}, gotBlind); diff != "" {
		t.Errorf("blind spots (-want +got):\n%s", diff)
	}
	for _, r := range reasons {
		if strings.Contains(r.Key, "park") || strings.Contains(r.Key, "no record") {
			t.Errorf("park reason %q taken for a FAILED one", r.Key)
		}
	}
}

// dedupeAdjacentPos drops repeats of one key found at one place (a
// function returning the same prefix from two returns).
func dedupeAdjacentPos(rs []Reason, keys []string) []string {
	var out []string
	seen := map[string]bool{}
	for i, k := range keys {
		id := k + "\x00" + rs[i].Pos
		if !seen[id] {
			seen[id] = true
			out = append(out, k)
		}
	}
	return out
}

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ format, want string }{
		{"report exceeds %d rows; narrow the filter", "report exceeds {} rows; narrow the filter"},
		{"unknown report_type %q; known types: %v", "unknown report_type {}; known types"},
		{"stage %d listener %s failed %s delivery attempts", "stage {} listener {} failed"},
		{"aggregator: %w", "aggregator: {}"},
		{"%s.%s: %q is not an integer", "{}.{}: {} is not an integer"},
		{"; last error from %s: %s", "last error from"},
		{" (report %s)", "(report {})"},
		{"100%% done, still %d", "100% done, still"},
		{"cancelled by operator", "cancelled by operator"},
	}
	for _, tt := range tests {
		if got := Key(tt.format); got != tt.want {
			t.Errorf("Key(%q) = %q, want %q", tt.format, got, tt.want)
		}
	}
}

// TestCheck shows the check names a reason the README lacks and a row
// that matches no reason.
func TestCheck(t *testing.T) {
	t.Parallel()
	reasons := []Reason{
		{Key: "report exceeds {} rows; narrow the filter", Pos: "a.go:1", Format: "report exceeds %d rows; narrow the filter"},
		{Key: "{}.{}: {} is not an integer", Pos: "b.go:2"},
		{Key: "cancelled by operator", Pos: "c.go:3"},
	}
	rows := []Row{
		{Line: 10, Reason: "`report exceeds {N} rows; narrow the filter`", Means: "m", Action: "a"},
		{Line: 11, Reason: "`{source}.{column}: \"{value}\" is not an integer`", Means: "m", Action: "a"},
		{Line: 12, Reason: "`stale row`", Means: "m", Action: "a"},
	}
	got := Check(reasons, rows)
	if len(got) != 2 || !strings.Contains(got[0], `"cancelled by operator"`) || !strings.Contains(got[1], "README.md:12") {
		t.Errorf("Check = %q; want the missing reason, then the stale row at line 12", got)
	}
}
