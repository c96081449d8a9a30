package report_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
)

// paramsView shows Params with its times as text, so the location (UTC)
// is compared too, not only the instant.
type paramsView struct {
	TagIDs   []int64
	From, To string
}

func view(p report.Params) paramsView {
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
		{"microseconds kept", `{"tagIds":[3],"from":"2026-01-01T00:00:00.123456Z",` + feb + `}`,
			paramsView{[]int64{3}, "2026-01-01T00:00:00.123456Z UTC", febUTC}},
		// The databases keep microseconds and the driver truncates finer
		// bounds; rounded up, [from, to) still holds exactly the stored
		// times the user's range holds.
		{"finer than a microsecond: rounded up", `{"tagIds":[3],"from":"2026-01-01T00:00:00.123456001Z","to":"2026-01-31T23:59:59.0000001Z"}`,
			paramsView{[]int64{3}, "2026-01-01T00:00:00.123457Z UTC", "2026-01-31T23:59:59.000001Z UTC"}},
		{"trailing zeros are no fraction", `{"tagIds":[3],"from":"2026-01-01T00:00:00.000001000000000000Z",` + feb + `}`,
			paramsView{[]int64{3}, "2026-01-01T00:00:00.000001Z UTC", febUTC}},
		{"a digit far past nanoseconds still rounds up", `{"tagIds":[3],"from":"2026-01-01T00:00:00.0000000000000000000001Z",` + feb + `}`,
			paramsView{[]int64{3}, "2026-01-01T00:00:00.000001Z UTC", febUTC}},
		{"rounding carries into the next second", `{"tagIds":[3],"from":"2026-01-01T23:59:59.9999999+23:59",` + feb + `}`,
			paramsView{[]int64{3}, "2026-01-01T00:01:00Z UTC", febUTC}},
		{"lowercase t and z (RFC 3339 5.6)", `{"tagIds":[3],"from":"2026-01-01t00:00:00z","to":"2026-02-01t00:00:00.5z"}`,
			paramsView{[]int64{3}, janUTC, "2026-02-01T00:00:00.5Z UTC"}},
		{"offsets of 23:59 either way", `{"tagIds":[3],"from":"2026-01-01T23:59:00+23:59","to":"2026-01-31T00:01:00-23:59"}`,
			paramsView{[]int64{3}, janUTC, febUTC}},
		{"unknown local offset -00:00", `{"tagIds":[3],"from":"2026-01-01T00:00:00-00:00",` + feb + `}`,
			paramsView{[]int64{3}, janUTC, febUTC}},
		{"29 February of a leap year", `{"tagIds":[3],"from":"2024-02-29T00:00:00Z",` + feb + `}`,
			paramsView{[]int64{3}, "2024-02-29T00:00:00Z UTC", febUTC}},
		{"the whole range the databases store", `{"tagIds":[3],"from":"1000-01-01T00:00:00Z","to":"9999-12-31T23:59:59.999999Z"}`,
			paramsView{[]int64{3}, "1000-01-01T00:00:00Z UTC", "9999-12-31T23:59:59.999999Z UTC"}},
		{"range ends reached through offsets", `{"tagIds":[3],"from":"1000-01-01T01:00:00+01:00","to":"9999-12-31T22:59:59-01:00"}`,
			paramsView{[]int64{3}, "1000-01-01T00:00:00Z UTC", "9999-12-31T23:59:59Z UTC"}},
		{"unknown fields ignored", `{"tagIds":[3],"userId":9,"extra":{"a":[1]},` + jan + `,` + feb + `}`,
			paramsView{[]int64{3}, janUTC, febUTC}},
		{"exactly the maximum", `{"tagIds":[` + tagList(1, report.MaxTagIDs) + `],` + jan + `,` + feb + `}`,
			paramsView{seq(1, report.MaxTagIDs), janUTC, febUTC}},
		{"duplicates do not count towards the maximum", `{"tagIds":[` + tagList(1, report.MaxTagIDs) + `,1,2,3],` + jan + `,` + feb + `}`,
			paramsView{seq(1, report.MaxTagIDs), janUTC, febUTC}},
		{"largest int64 tag", `{"tagIds":[9223372036854775807],` + jan + `,` + feb + `}`,
			paramsView{[]int64{9223372036854775807}, janUTC, febUTC}},
		{"whitespace around the object", " \n{\"tagIds\":[1]," + jan + "," + feb + "}\n",
			paramsView{[]int64{1}, janUTC, febUTC}},
		{"one nanosecond apart", `{"tagIds":[1],"from":"2026-01-01T00:00:00Z","to":"2026-01-01T00:00:00.000000001Z"}`,
			paramsView{[]int64{1}, janUTC, "2026-01-01T00:00:00.000001Z UTC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := report.ParseParams([]byte(tt.raw))
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
		{"too many distinct tags", `{"tagIds":[` + tagList(1, report.MaxTagIDs+1) + `],` + jan + `,` + feb + `}`, []string{"tagIds"}},
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
		// A decoder keeps the last of duplicates: these ran with tag 9.
		{"tagIds twice", `{"tagIds":[3],"tagIds":[9],` + jan + `,` + feb + `}`, []string{"tagIds", "more than once"}},
		{"tagIds twice, once escaped", `{"tagIds":[3],"tag\u0049ds":[9],` + jan + `,` + feb + `}`, []string{"tagIds", "more than once"}},
		{"from twice", `{"tagIds":[3],` + jan + `,"from":"2026-01-15T00:00:00Z",` + feb + `}`, []string{"from", "more than once"}},
		{"to twice, same value", `{"tagIds":[3],` + jan + `,` + feb + `,` + feb + `}`, []string{"to", "more than once"}},
		{"an unknown field twice", `{"tagIds":[3],` + jan + `,` + feb + `,"note":1,"note":2}`, []string{"note", "more than once"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := report.ParseParams([]byte(tt.raw))
			if !errors.Is(err, report.ErrInvalidParams) {
				t.Fatalf("ParseParams(%.60s) = %+v, %v; want an error wrapping ErrInvalidParams", tt.raw, got, err)
			}
			if tt.names == nil && !strings.Contains(err.Error(), "JSON object") {
				t.Errorf("error %q does not say params must be a JSON object", err)
			}
			for _, n := range tt.names {
				if !strings.Contains(n, " ") {
					n = `"` + n + `"`
				}
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name field %q", err, n)
				}
			}
			if diff := cmp.Diff(report.Params{}, got); diff != "" {
				t.Errorf("ParseParams returned params with its error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseParamsTimeErrors checks that a time the databases cannot take
// is refused by ParseParams, not by the driver on every delivery, and that
// the reason quotes what the user sent and says why it is refused, never a
// value the user did not write (such as a UTC conversion into year 10000).
func TestParseParamsTimeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		from  string
		to    string
		field string   // the field the message names
		says  []string // and further text it must contain
	}{
		{"year 0", "0000-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "from", []string{"1000-01-01 00:00:00"}},
		{"year 1 with a positive offset (year 0 in UTC)", "0001-01-01T00:00:00+01:00", "2026-02-01T00:00:00Z", "from", []string{"before 1000-01-01 00:00:00"}},
		{"just before year 1000", "0999-12-31T23:59:59.999999Z", "2026-02-01T00:00:00Z", "from", []string{"before 1000-01-01 00:00:00"}},
		{"year 1000 at +00:01 (999 in UTC)", "1000-01-01T00:00:00+00:01", "2026-02-01T00:00:00Z", "from", []string{"before 1000-01-01 00:00:00"}},
		{"offset pushes to into year 10000", "2026-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00", "to", []string{"after 9999-12-31 23:59:59.999999"}},
		{"rounding up pushes to into year 10000", "2026-01-01T00:00:00Z", "9999-12-31T23:59:59.9999991Z", "to", []string{"after 9999-12-31 23:59:59.999999"}},
		{"five-digit year", "2026-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "to", []string{"RFC 3339"}},
		{"offset +24:00", "2026-01-01T00:00:00+24:00", "2026-02-01T00:00:00Z", "from", []string{"offset"}},
		{"offset -24:00", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00-24:00", "to", []string{"offset"}},
		{"offset +99:00", "2026-01-01T00:00:00+99:00", "2026-02-01T00:00:00Z", "from", []string{"offset"}},
		{"offset minutes 60", "2026-01-01T00:00:00+05:60", "2026-02-01T00:00:00Z", "from", []string{"offset"}},
		{"offset without colon", "2026-01-01T00:00:00+0500", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"offset of hours only", "2026-01-01T00:00:00+05", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"hour 24", "2026-01-01T24:00:00Z", "2026-02-01T00:00:00Z", "from", []string{"hour"}},
		{"minute 60", "2026-01-01T00:60:00Z", "2026-02-01T00:00:00Z", "from", []string{"minute"}},
		{"leap second", "2016-12-31T23:59:60Z", "2026-02-01T00:00:00Z", "from", []string{"second"}},
		{"month 13", "2026-13-01T00:00:00Z", "2027-02-01T00:00:00Z", "from", []string{"month"}},
		{"month 0", "2026-00-01T00:00:00Z", "2026-02-01T00:00:00Z", "from", []string{"month"}},
		{"day 0", "2026-01-00T00:00:00Z", "2026-02-01T00:00:00Z", "from", []string{"day"}},
		{"29 February of a common year", "2026-02-29T00:00:00Z", "2026-03-01T00:00:00Z", "from", []string{"day"}},
		{"31 April", "2026-01-01T00:00:00Z", "2026-04-31T00:00:00Z", "to", []string{"day"}},
		{"dot without digits", "2026-01-01T00:00:00.Z", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"comma fraction", "2026-01-01T00:00:00,5Z", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"no offset", "2026-01-01T00:00:00.5", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"trailing space", "2026-01-01T00:00:00Z ", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"lowercase offset letters other than z", "2026-01-01T00:00:00x", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"one-digit month", "2026-1-01T00:00:00Z", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"signed year", "+2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"non-ASCII digits", "２０２６-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "from", []string{"RFC 3339"}},
		{"both within one microsecond", "2026-01-01T00:00:00.0000001Z", "2026-01-01T00:00:00.0000002Z", "from", []string{`"to"`, "microsecond"}},
		{"from after to within one microsecond", "2026-01-01T00:00:00.0000002Z", "2026-01-01T00:00:00.0000001Z", "from", []string{`"to"`, "must be before"}},
		{"from after to, beyond the nanosecond", "2026-01-01T00:00:00.0000000002Z", "2026-01-01T00:00:00.0000000001Z", "from", []string{`"to"`, "must be before"}},
		{"from after to, quoted as sent", "2026-01-01T09:00:00.5+09:00", "2026-01-01T00:00:00Z", "from", []string{`"to"`, "before"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := fmt.Sprintf(`{"tagIds":[3],"from":%q,"to":%q}`, tt.from, tt.to)
			got, err := report.ParseParams([]byte(raw))
			if !errors.Is(err, report.ErrInvalidParams) {
				t.Fatalf("ParseParams(%s) = %v, %v; want an error wrapping ErrInvalidParams", raw, view(got), err)
			}
			sent := tt.from
			if tt.field == "to" {
				sent = tt.to
			}
			for _, want := range append([]string{`"` + tt.field + `"`, strconv.Quote(sent)}, tt.says...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %s", err, want)
				}
			}
			if strings.Contains(err.Error(), "10000") && !strings.Contains(sent, "10000") {
				t.Errorf("error %q quotes a year 10000 the user did not write", err)
			}
		})
	}
}

// TestParamsJSONRoundTrip checks that the normalised form messages carry
// parses back to the same params.
func TestParamsJSONRoundTrip(t *testing.T) {
	t.Parallel()
	p, err := report.ParseParams([]byte(`{"tagIds":[10,3,10],"from":"2026-01-01T09:00:00.5+09:00","to":"2026-02-01T00:00:00Z","x":1}`))
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
	var back report.Params
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(view(p), view(back)); diff != "" {
		t.Errorf("params after a JSON round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"tagIds":[]}`), &back); !errors.Is(err, report.ErrInvalidParams) {
		t.Errorf("json.Unmarshal of bad params = %v, want ErrInvalidParams", err)
	}
}

// TestSubMicrosecondBoundsInTheDatabase runs the withdrawals query on the
// real MariaDB with bounds finer than the microsecond the driver sends and
// the database keeps: the half-open range [from, to) must still mean what
// the user wrote. A row at 23:59:59 is before 23:59:59.0000001, so it is in;
// a row at 00:00:00 is before 00:00:00.0000001, so it is out.
func TestSubMicrosecondBoundsInTheDatabase(t *testing.T) {
	t.Parallel()
	src := report.Sources["ListenWithdraw"]
	db := testdb.New(t, "paramstest", src.DDL)
	ctx := context.Background()
	for _, r := range [][]any{
		{1, "2026-01-01 00:00:00"}, // at from, truncated: out
		{2, "2026-01-01 00:00:01"}, // in
		{3, "2026-01-31 23:59:59"}, // before to: in
		{4, "2026-02-01 00:00:00"}, // after to: out
	} {
		if _, err := db.ExecContext(ctx, "INSERT INTO vs_withdraw (id, user_id, amount, currency, status, created_at) VALUES (?, 1, '1.00', 'USD', 'SUCCESS', ?)", r...); err != nil {
			t.Fatalf("insert %v: %v", r, err)
		}
	}
	p, err := report.ParseParams([]byte(`{"tagIds":[1],"from":"2026-01-01T00:00:00.0000001Z","to":"2026-01-31T23:59:59.0000001Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	out := dataset.NewMemStore()
	w := dataset.NewWriter(ctx, out, src.Dataset(), 0)
	if err := report.Fetch(ctx, db, src, p, nil, w); err != nil {
		t.Fatalf("report.Fetch: %v", err)
	}
	chunks, rows, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Finish(ctx, src.Dataset(), chunks, rows); err != nil {
		t.Fatal(err)
	}
	r, err := dataset.Open(ctx, out, src.Dataset(), len(src.Columns))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, row[1]+" "+row[5]) // id and created_at
	}
	want := []string{"2 2026-01-01T00:00:01Z", "3 2026-01-31T23:59:59Z"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows in [from, to) (-want +got):\n%s", diff)
	}
}
