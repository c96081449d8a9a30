package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// MaxTagIDs bounds the tag filter so one query stays a reasonable size.
const MaxTagIDs = 1000

// Params are a report's filters, validated and normalised.
type Params struct {
	TagIDs []int64   // distinct, ascending
	From   time.Time // UTC, inclusive
	To     time.Time // UTC, exclusive
}

// ErrInvalidParams marks params a person must fix; the record ends FAILED.
var ErrInvalidParams = errors.New("invalid params")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidParams, fmt.Sprintf(format, a...))
}

// ParseParams validates the record's params JSON:
// {"tagIds":[3,7],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}.
// Unknown fields are ignored; every error names the offending field.
func ParseParams(raw []byte) (Params, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return Params{}, invalid("params must be a JSON object, got %s", describe(raw))
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
	var err error
	if p.From, err = parseTime(fields, "from"); err != nil {
		return Params{}, err
	}
	if p.To, err = parseTime(fields, "to"); err != nil {
		return Params{}, err
	}
	if !p.From.Before(p.To) {
		return Params{}, invalid(`"from" (%s) must be before "to" (%s)`, p.From.Format(time.RFC3339Nano), p.To.Format(time.RFC3339Nano))
	}
	return p, nil
}

func parseTime(fields map[string]json.RawMessage, name string) (time.Time, error) {
	raw, ok := fields[name]
	if !ok {
		return time.Time{}, invalid("%q is required (RFC 3339 time, e.g. 2026-01-01T00:00:00Z)", name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, invalid("%q must be an RFC 3339 time string, got %s", name, describe(raw))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid("%q is not an RFC 3339 time: %q", name, s)
	}
	return t.UTC(), nil
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
