package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// paramsView shows Params with its times as text, so the location (UTC)
// is compared too, not only the instant.
type paramsView struct {
	TagIDs   []int64
	From, To string
}

func view(p Params) paramsView {
	return paramsView{p.TagIDs, p.From.Format(time.RFC3339Nano) + " " + p.From.Location().String(),
		p.To.Format(time.RFC3339Nano) + " " + p.To.Location().String()}
}

func tagList(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		if i > from {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, i)
	}
	return b.String()
}

func seq(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

const jan, feb = `"from":"2026-01-01T00:00:00Z"`, `"to":"2026-02-01T00:00:00Z"`

func TestParseParams(t *testing.T) {
	t.Parallel()
	janUTC := "2026-01-01T00:00:00Z UTC"
	febUTC := "2026-02-01T00:00:00Z UTC"
	tests := []struct {
		name string
		raw  string
		want paramsView
	}{
		{"sorted and deduplicated", `{"tagIds":[10,3,3,10,7],` + jan + `,` + feb + `}`,
			paramsView{[]int64{3, 7, 10}, janUTC, febUTC}},
		{"offsets become UTC", `{"tagIds":[3],"from":"2026-01-01T09:00:00+09:00","to":"2026-01-31T19:00:00-05:00"}`,
			paramsView{[]int64{3}, janUTC, febUTC}},
		{"fractional seconds kept", `{"tagIds":[3],"from":"2026-01-01T00:00:00.123456789Z",` + feb + `}`,
			paramsView{[]int64{3}, "2026-01-01T00:00:00.123456789Z UTC", febUTC}},
		{"unknown fields ignored", `{"tagIds":[3],"userId":9,"extra":{"a":[1]},` + jan + `,` + feb + `}`,
			paramsView{[]int64{3}, janUTC, febUTC}},
		{"exactly the maximum", `{"tagIds":[` + tagList(1, MaxTagIDs) + `],` + jan + `,` + feb + `}`,
			paramsView{seq(1, MaxTagIDs), janUTC, febUTC}},
		{"duplicates do not count towards the maximum", `{"tagIds":[` + tagList(1, MaxTagIDs) + `,1,2,3],` + jan + `,` + feb + `}`,
			paramsView{seq(1, MaxTagIDs), janUTC, febUTC}},
		{"largest int64 tag", `{"tagIds":[9223372036854775807],` + jan + `,` + feb + `}`,
			paramsView{[]int64{9223372036854775807}, janUTC, febUTC}},
		{"whitespace around the object", " \n{\"tagIds\":[1]," + jan + "," + feb + "}\n",
			paramsView{[]int64{1}, janUTC, febUTC}},
		{"one nanosecond apart", `{"tagIds":[1],"from":"2026-01-01T00:00:00Z","to":"2026-01-01T00:00:00.000000001Z"}`,
			paramsView{[]int64{1}, janUTC, "2026-01-01T00:00:00.000000001Z UTC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseParams([]byte(tt.raw))
			if err != nil {
				t.Fatalf("ParseParams(%s): %v", tt.raw, err)
			}
			if diff := cmp.Diff(tt.want, view(got)); diff != "" {
				t.Errorf("ParseParams(%s) (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestParseParamsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		// names are the field names the message must quote ("" for a
		// value that is not an object at all).
		names []string
	}{
		{"empty body", ``, nil},
		{"null", `null`, nil},
		{"array", `[3]`, nil},
		{"string", `"tagIds"`, nil},
		{"number", `3`, nil},
		{"truncated object", `{"tagIds":[3]`, nil},
		{"no tagIds", `{` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"tagIds null", `{"tagIds":null,` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"tagIds empty", `{"tagIds":[],` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"tagIds not an array", `{"tagIds":3,` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"tagIds as string", `{"tagIds":"3,10",` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"tag zero", `{"tagIds":[3,0],` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"negative tag", `{"tagIds":[-3],` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"fractional tag", `{"tagIds":[1.5],` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"exponent tag", `{"tagIds":[1e3],` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"tag as string", `{"tagIds":["3"],` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"tag null", `{"tagIds":[null],` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"tag beyond int64", `{"tagIds":[9223372036854775808],` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"too many distinct tags", `{"tagIds":[` + tagList(1, MaxTagIDs+1) + `],` + jan + `,` + feb + `}`, []string{"tagIds"}},
		{"no from", `{"tagIds":[3],` + feb + `}`, []string{"from"}},
		{"no to", `{"tagIds":[3],` + jan + `}`, []string{"to"}},
		{"from null", `{"tagIds":[3],"from":null,` + feb + `}`, []string{"from"}},
		{"from a number", `{"tagIds":[3],"from":1767225600,` + feb + `}`, []string{"from"}},
		{"from a date only", `{"tagIds":[3],"from":"2026-01-01",` + feb + `}`, []string{"from"}},
		{"from without offset", `{"tagIds":[3],"from":"2026-01-01T00:00:00",` + feb + `}`, []string{"from"}},
		{"from with a space", `{"tagIds":[3],"from":"2026-01-01 00:00:00Z",` + feb + `}`, []string{"from"}},
		{"to not a time", `{"tagIds":[3],` + jan + `,"to":"next month"}`, []string{"to"}},
		{"to impossible date", `{"tagIds":[3],` + jan + `,"to":"2026-02-30T00:00:00Z"}`, []string{"to"}},
		{"from equals to", `{"tagIds":[3],` + jan + `,"to":"2026-01-01T00:00:00Z"}`, []string{"from", "to"}},
		{"same instant, other offsets", `{"tagIds":[3],"from":"2026-01-01T09:00:00+09:00","to":"2026-01-01T00:00:00Z"}`, []string{"from", "to"}},
		{"from after to", `{"tagIds":[3],"from":"2026-02-01T00:00:00Z","to":"2026-01-01T00:00:00Z"}`, []string{"from", "to"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseParams([]byte(tt.raw))
			if !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("ParseParams(%.60s) = %+v, %v; want an error wrapping ErrInvalidParams", tt.raw, got, err)
			}
			if tt.names == nil && !strings.Contains(err.Error(), "JSON object") {
				t.Errorf("error %q does not say params must be a JSON object", err)
			}
			for _, n := range tt.names {
				if !strings.Contains(err.Error(), `"`+n+`"`) {
					t.Errorf("error %q does not name field %q", err, n)
				}
			}
			if diff := cmp.Diff(Params{}, got); diff != "" {
				t.Errorf("ParseParams returned params with its error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParamsJSONRoundTrip checks that the normalised form messages carry
// parses back to the same params.
func TestParamsJSONRoundTrip(t *testing.T) {
	t.Parallel()
	p, err := ParseParams([]byte(`{"tagIds":[10,3,10],"from":"2026-01-01T09:00:00.5+09:00","to":"2026-02-01T00:00:00Z","x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`{"tagIds":[3,10],"from":"2026-01-01T00:00:00.5Z","to":"2026-02-01T00:00:00Z"}`, string(b)); diff != "" {
		t.Errorf("json.Marshal(params) (-want +got):\n%s", diff)
	}
	var back Params
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(view(p), view(back)); diff != "" {
		t.Errorf("params after a JSON round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"tagIds":[]}`), &back); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("json.Unmarshal of bad params = %v, want ErrInvalidParams", err)
	}
}
