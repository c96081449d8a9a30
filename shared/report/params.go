package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/failreason"
)

// MaxTagIDs bounds the tag filter so one query stays a reasonable size.
const MaxTagIDs = 1000

// Params are a report's filters, validated and normalised.
type Params struct {
	TagIDs []int64   // distinct, ascending
	From   time.Time // UTC, inclusive, whole microseconds
	To     time.Time // UTC, exclusive, whole microseconds
}

// ErrInvalidParams marks params a person must fix; the record ends FAILED.
var ErrInvalidParams = errors.New(failreason.InvalidParams.Lead())

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidParams, fmt.Sprintf(format, a...))
}

// ParseParams validates the record's params JSON:
// {"tagIds":[3,7],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}.
// Unknown fields are ignored, a field named twice is refused; every error
// names the offending field and quotes what was sent. Times are RFC 3339, within the range the databases
// store (years 1000 to 9999 in UTC), and are rounded up to the microsecond.
func ParseParams(raw []byte) (Params, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return Params{}, invalid("params must be a JSON object, got %s", describe(raw))
	}
	if key, ok := duplicateKey(raw); ok {
		return Params{}, invalid("%s appears more than once; send each field once", quote(key))
	}
	var p Params
	tags, ok := fields["tagIds"]
	if !ok {
		return Params{}, invalid(`"tagIds" is required (1 to %d positive integers)`, MaxTagIDs)
	}
	// Raw elements, not json.Number: json.Number would also take "3", a string.
	var nums []json.RawMessage
	if err := json.Unmarshal(tags, &nums); err != nil || nums == nil {
		return Params{}, invalid(`"tagIds" must be an array of positive integers, got %s`, describe(tags))
	}
	for _, n := range nums {
		v, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || v <= 0 {
			return Params{}, invalid(`"tagIds" must hold positive integers, got %s`, n)
		}
		p.TagIDs = append(p.TagIDs, v)
	}
	slices.Sort(p.TagIDs)
	p.TagIDs = slices.Compact(p.TagIDs)
	if len(p.TagIDs) == 0 || len(p.TagIDs) > MaxTagIDs {
		return Params{}, invalid(`"tagIds" must hold 1 to %d distinct tag IDs, got %d`, MaxTagIDs, len(p.TagIDs))
	}
	from, err := parseTime(fields, "from")
	if err != nil {
		return Params{}, err
	}
	to, err := parseTime(fields, "to")
	if err != nil {
		return Params{}, err
	}
	// Messages quote the times as sent: the UTC, rounded values are ours.
	if !from.exact.before(to.exact) {
		return Params{}, invalid(`"from" (%s) must be before "to" (%s)`, quote(from.sent), quote(to.sent))
	}
	if !from.t.Before(to.t) {
		return Params{}, invalid(`"from" (%s) and "to" (%s) round up to the same microsecond, the finest time the databases store, so the range holds no stored time`, quote(from.sent), quote(to.sent))
	}
	p.From, p.To = from.t, to.t
	return p, nil
}

// duplicateKey returns a key the JSON object raw (already decoded once, so
// well-formed) names twice. A map, or a struct, keeps the last of two
// "tagIds" silently, so the report would run with a filter the sender may
// not have meant; the trigger's parser refuses duplicates for the same
// reason. Keys compare after unescaping: "tag\u0049ds" is "tagIds".
func duplicateKey(raw []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		key, _ := tok.(string)
		if seen[key] {
			return key, true
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}

// The range of MySQL's and MariaDB's DATETIME(6). A bound outside it fails
// in the driver ("year is out of range") or the database on every delivery,
// so it is refused here, once, as the user's mistake.
var (
	minTime = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// bound is a parsed time bound.
type bound struct {
	sent  string    // as the user wrote it
	exact instant   // what it means
	t     time.Time // in UTC, rounded up to the microsecond
}

// parseTime reads field name as an RFC 3339 time.
//
// Rounding up: the driver sends microseconds and drops the rest, which
// would move from back (admitting a row at 00:00:00 for from
// 00:00:00.0000001) and to back (losing a row at 23:59:59 for to
// 23:59:59.0000001). The smallest stored time at or after a bound is the
// bound rounded up, so [from, to) keeps exactly the stored times it meant.
func parseTime(fields map[string]json.RawMessage, name string) (bound, error) {
	raw, ok := fields[name]
	if !ok {
		return bound{}, invalid("%q is required (RFC 3339 time, e.g. 2026-01-01T00:00:00Z)", name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return bound{}, invalid("%q must be an RFC 3339 time string, got %s", name, describe(raw))
	}
	in, why := parseRFC3339(s)
	if why != "" {
		return bound{}, invalid("%q is not an RFC 3339 time (e.g. 2026-01-01T00:00:00Z): %s: %s", name, quote(s), why)
	}
	t := in.ceilMicro()
	if t.Before(minTime) {
		return bound{}, invalid("%q is out of range: %s is before 1000-01-01 00:00:00 UTC, the earliest time the databases store", name, quote(s))
	}
	if t.After(maxTime) {
		return bound{}, invalid("%q is out of range: %s is after 9999-12-31 23:59:59.999999 UTC (rounded up to the microsecond), the latest time the databases store", name, quote(s))
	}
	return bound{sent: s, exact: in, t: t}, nil
}

// instant is a time exactly as written: whole seconds in UTC, and the
// fraction's digits without trailing zeros (any number of them).
type instant struct {
	sec  time.Time
	frac string
}

// before compares exactly. Fractions without trailing zeros compare as
// strings: "45" < "5" as 0.45 < 0.5, and a prefix is the smaller.
func (a instant) before(b instant) bool {
	if !a.sec.Equal(b.sec) {
		return a.sec.Before(b.sec)
	}
	return a.frac < b.frac
}

// ceilMicro rounds up to the microsecond, in UTC.
func (a instant) ceilMicro() time.Time {
	micro := 0
	for i := range 6 {
		micro *= 10
		if i < len(a.frac) {
			micro += int(a.frac[i] - '0')
		}
	}
	if len(a.frac) > 6 {
		micro++ // frac has no trailing zeros: something is past the microsecond
	}
	return a.sec.Add(time.Duration(micro) * time.Microsecond)
}

// parseRFC3339 parses RFC 3339's date-time (section 5.6: "T" and "Z" in
// either case, any number of fraction digits, offsets within ±23:59). It
// returns why s is not one, or "". time.Parse is not used: it takes ","
// for ".", offsets such as +24:00 and +05:60, and refuses a lowercase "t".
func parseRFC3339(s string) (instant, string) {
	const form = "not of the form YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)"
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' ||
		(s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return instant{}, form
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return instant{}, form
	}
	rest := s[19:]
	frac := ""
	if rest != "" && rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 {
			return instant{}, form
		}
		frac = strings.TrimRight(rest[1:n], "0")
		rest = rest[n:]
	}
	offset := 0
	switch {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm {
			return instant{}, form
		}
		if oh > 23 || om > 59 {
			return instant{}, "offset " + rest + " is outside -23:59 to +23:59"
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return instant{}, form
	}
	switch {
	case month < 1 || month > 12:
		return instant{}, "month " + s[5:7] + " is not 01 to 12"
	case day < 1 || day > daysIn(time.Month(month), year):
		return instant{}, "day " + s[8:10] + " is not in " + time.Month(month).String() + " " + s[0:4]
	case hour > 23:
		return instant{}, "hour " + s[11:13] + " is not 00 to 23"
	case minute > 59:
		return instant{}, "minute " + s[14:16] + " is not 00 to 59"
	case sec > 59:
		// RFC 3339 allows a leap second; neither Go nor the databases do.
		return instant{}, "second " + s[17:19] + " is not 00 to 59 (leap seconds are not supported)"
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	return instant{sec: t.Add(-time.Duration(offset) * time.Second), frac: frac}, ""
}

// digits parses a fixed-width field of ASCII decimal digits.
func digits(s string) (int, bool) {
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	return v, true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// quote quotes a time string as sent, truncated like describe.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// describe quotes a bad value for an error message, truncated.
func describe(raw []byte) string {
	const max = 80
	s := string(bytes.TrimSpace(raw))
	if len(s) > max {
		s = s[:max] + "…"
	}
	if s == "" {
		return "nothing"
	}
	return strconv.Quote(s)
}

// MarshalJSON writes the normalised form, which is what messages carry.
func (p Params) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		TagIDs []int64 `json:"tagIds"`
		From   string  `json:"from"`
		To     string  `json:"to"`
	}{p.TagIDs, p.From.Format(time.RFC3339Nano), p.To.Format(time.RFC3339Nano)})
}

// UnmarshalJSON accepts what ParseParams accepts.
func (p *Params) UnmarshalJSON(b []byte) error {
	v, err := ParseParams(b)
	if err != nil {
		return err
	}
	*p = v
	return nil
}
