package report_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/report"
)

// Seeds: the shapes ParseParams sees, and one per finding of the hostile
// upstream review (sub-microsecond bounds, years the databases refuse,
// RFC 3339 case and offsets).
var paramsSeeds = []string{
	`{"tagIds":[3,10],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[10,3,3],"from":"2026-01-01T09:00:00+09:00","to":"2026-01-31T19:00:00-05:00","x":1}`,
	`{"tagIds":[9223372036854775807],"from":"2026-01-01T00:00:00.123456789Z","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[1],"from":"2026-01-01T00:00:00.0000001Z","to":"2026-01-31T23:59:59.0000001Z"}`,
	`{"tagIds":[1],"from":"2026-01-01T00:00:00.0000001Z","to":"2026-01-01T00:00:00.0000002Z"}`,
	`{"tagIds":[1],"from":"2026-01-01T23:59:59.9999999+23:59","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[1],"from":"0000-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[1],"from":"0001-01-01T00:00:00+01:00","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[1],"from":"1000-01-01T00:00:00Z","to":"9999-12-31T23:59:59.999999Z"}`,
	`{"tagIds":[1],"from":"2026-01-01T00:00:00Z","to":"9999-12-31T23:59:59-12:00"}`,
	`{"tagIds":[1],"from":"2026-01-01T00:00:00Z","to":"9999-12-31T23:59:59.9999991Z"}`,
	`{"tagIds":[1],"from":"2026-01-01t00:00:00z","to":"2026-02-01t00:00:00.5z"}`,
	`{"tagIds":[1],"from":"2026-01-01T00:00:00+24:00","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[1],"from":"2026-01-01T00:00:00+05:60","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[1],"from":"2026-01-01T00:00:00,5Z","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[1],"from":"2016-12-31T23:59:60Z","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[1],"from":"2024-02-29T00:00:00Z","to":"2026-02-30T00:00:00Z"}`,
	`{"tagIds":["3"],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`,
	`{"tagIds":[1e3,1.5,-3,0],"from":1767225600,"to":null}`,
	`{"tagIds":[1]}`, `{}`, `[]`, `null`, ``, `{"tagIds":[3]`,
}

// FuzzParseParams: ParseParams never panics; what it refuses is
// ErrInvalidParams; what it accepts is normalised, within the range the
// databases store, and survives the JSON round trip messages make.
func FuzzParseParams(f *testing.F) {
	for _, s := range paramsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := report.ParseParams(raw)
		if err != nil {
			if !errors.Is(err, report.ErrInvalidParams) {
				t.Fatalf("ParseParams(%q): %v, not ErrInvalidParams", raw, err)
			}
			if diff := cmp.Diff(report.Params{}, p); diff != "" {
				t.Errorf("params returned with an error (-want +got):\n%s", diff)
			}
			return
		}
		checkParams(t, p)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("json.Marshal(%+v): %v", p, err)
		}
		back, err := report.ParseParams(b)
		if err != nil {
			t.Fatalf("ParseParams(%s), the normalised form of %q: %v", b, raw, err)
		}
		if diff := cmp.Diff(view(p), view(back)); diff != "" {
			t.Errorf("params after a JSON round trip of %q (-want +got):\n%s", raw, diff)
		}
	})
}

// FuzzParamsTimes fuzzes the two time strings alone, and checks every
// time ParseParams accepts against time.Parse: the same instant, rounded
// up to the microsecond.
func FuzzParamsTimes(f *testing.F) {
	for _, s := range paramsSeeds {
		var v struct{ From, To any }
		if json.Unmarshal([]byte(s), &v) == nil {
			from, _ := v.From.(string)
			to, _ := v.To.(string)
			f.Add(from, to)
		}
	}
	f.Fuzz(func(t *testing.T, from, to string) {
		raw, err := json.Marshal(map[string]any{"tagIds": []int{1}, "from": from, "to": to})
		if err != nil {
			t.Skip() // not a JSON string
		}
		p, err := report.ParseParams(raw)
		if err != nil {
			if !errors.Is(err, report.ErrInvalidParams) {
				t.Fatalf("ParseParams(%s): %v, not ErrInvalidParams", raw, err)
			}
			return
		}
		checkParams(t, p)
		for _, c := range []struct {
			sent string
			got  time.Time
		}{{from, p.From}, {to, p.To}} {
			// time.Parse takes only an uppercase T and Z; beyond
			// nanoseconds it truncates, so compare only up to them.
			s := strings.Replace(c.sent, "t", "T", 1)
			s = strings.TrimSuffix(s, "z")
			if strings.HasSuffix(c.sent, "z") {
				s += "Z"
			}
			want, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				t.Fatalf("ParseParams accepted %q; time.Parse(%q): %v", c.sent, s, err)
			}
			if fracDigits(c.sent) > 9 {
				continue
			}
			if up := ceilMicro(want); !up.Equal(c.got) {
				t.Errorf("%q became %s; time.Parse rounded up to the microsecond gives %s", c.sent, c.got.Format(time.RFC3339Nano), up.Format(time.RFC3339Nano))
			}
		}
	})
}

func ceilMicro(t time.Time) time.Time {
	if d := t.Sub(t.Truncate(time.Microsecond)); d > 0 {
		return t.Truncate(time.Microsecond).Add(time.Microsecond)
	}
	return t
}

// fracDigits counts the digits after the seconds' '.'.
func fracDigits(s string) int {
	if len(s) < 20 || s[19] != '.' {
		return 0
	}
	n := 0
	for _, c := range s[20:] {
		if c < '0' || c > '9' {
			break
		}
		n++
	}
	return n
}

// checkParams checks what every accepted Params must be.
func checkParams(t *testing.T, p report.Params) {
	t.Helper()
	if len(p.TagIDs) == 0 || len(p.TagIDs) > report.MaxTagIDs {
		t.Errorf("%d tag IDs, want 1 to %d", len(p.TagIDs), report.MaxTagIDs)
	}
	if !slices.IsSorted(p.TagIDs) || len(slices.Compact(slices.Clone(p.TagIDs))) != len(p.TagIDs) || p.TagIDs[0] <= 0 {
		t.Errorf("tag IDs %v, want distinct, ascending, positive", p.TagIDs)
	}
	minT := time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxT := time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	for name, v := range map[string]time.Time{"from": p.From, "to": p.To} {
		if v.Location() != time.UTC {
			t.Errorf("%s %s is in %s, want UTC", name, v, v.Location())
		}
		if v.Before(minT) || v.After(maxT) {
			t.Errorf("%s %s is outside the databases' range", name, v.Format(time.RFC3339Nano))
		}
		if v.Nanosecond()%1000 != 0 {
			t.Errorf("%s %s is not a whole microsecond", name, v.Format(time.RFC3339Nano))
		}
	}
	if !p.From.Before(p.To) {
		t.Errorf("from %s is not before to %s", p.From.Format(time.RFC3339Nano), p.To.Format(time.RFC3339Nano))
	}
}
