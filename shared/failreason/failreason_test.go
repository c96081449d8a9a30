package failreason

import (
	"regexp"
	"strings"
	"testing"
)

var verb = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)

// TestShownMatchesFormat: the README shows what the code builds. Each
// reason's Shown must read as its Format with every verb standing for
// some text ({name}, quoted or not), so a changed Format with a stale
// Shown fails here rather than misleading a reader.
func TestShownMatchesFormat(t *testing.T) {
	t.Parallel()
	for _, r := range All {
		parts := verb.Split(r.Format, -1)
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		re := regexp.MustCompile("^" + strings.Join(parts, ".*"))
		if !re.MatchString(r.Shown) {
			t.Errorf("Shown %q does not read as Format %q", r.Shown, r.Format)
		}
		if r.Means == "" || r.Do == "" {
			t.Errorf("%q: Means and Do must say what happened and what to do", r.Format)
		}
		if strings.Contains(r.Means+r.Do+r.Shown, "|") {
			t.Errorf("%q: a | would break the README's table", r.Format)
		}
	}
}

// TestReasonsAreDistinct: no two reasons start alike, so a reader finds
// one row for a reason.
func TestReasonsAreDistinct(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, r := range All {
		if seen[r.Format] {
			t.Errorf("%q declared twice", r.Format)
		}
		seen[r.Format] = true
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    *Reason
		args []any
		want string
	}{
		{RowLimit, []any{int64(5)}, "report exceeds 5 rows; narrow the filter"},
		{UnknownType, []any{"x", []string{"a", "b"}}, `unknown report_type "x"; known types: [a b]`},
		{Cancelled, nil, "cancelled by operator"},
	}
	for _, tt := range tests {
		if got := tt.r.Text(tt.args...); got != tt.want {
			t.Errorf("Text = %q, want %q", got, tt.want)
		}
	}
	if got, want := InvalidParams.Lead(), "invalid params"; got != want {
		t.Errorf("Lead = %q, want %q", got, want)
	}
}
