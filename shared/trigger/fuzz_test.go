package trigger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// FuzzParseTrigger: ParseTrigger never panics, refuses with ErrNotTrigger,
// and what it accepts is unambiguous: the digits of the ID alone, or a JSON
// object whose one "recordId" key (no other key folds to it) holds them.
func FuzzParseTrigger(f *testing.F) {
	for _, s := range []string{
		"1111", "  1111\n", "00000001", "9223372036854775807", "9223372036854775808", "0", "-1", "1e3", "",
		`{"recordId":1111}`, ` {"recordId": 1111} `, `{"recordId":1111,"reportType":"withdraw_by_tag"}`,
		`{"recordId":"1111"}`, `{"recordId":null}`, `{"recordId":1.5}`, `{"recordId":1111}xyz`, `[1111]`,
		// The hostile-upstream findings: duplicates and other cases.
		`{"recordId":1,"recordId":2}`, `{"recordId":1,"RecordId":2}`, `{"recordid":2}`,
		`{"record\u0049d":3}`, `{"recordId":1,"record\u0049d":2}`, `{"recordId":1,"x":{"recordId":2}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, err := trigger.ParseTrigger(body)
		if err != nil {
			if !errors.Is(err, trigger.ErrNotTrigger) || id != 0 {
				t.Fatalf("ParseTrigger(%q) = %d, %v; want 0 and ErrNotTrigger", body, id, err)
			}
			return
		}
		if id <= 0 {
			t.Fatalf("ParseTrigger(%q) = %d, want a positive ID", body, id)
		}
		digits := strconv.FormatInt(id, 10)
		b := bytes.TrimSpace(body)
		if len(b) == 0 || b[0] != '{' {
			// Leading zeros are allowed: "0042" is still only 42.
			if trimmed := bytes.TrimLeft(b, "0"); string(trimmed) != digits {
				t.Fatalf("ParseTrigger(%q) = %d, but the body is not those digits", body, id)
			}
			return
		}
		// An independent reading: every key, in order, unescaped.
		dec := json.NewDecoder(bytes.NewReader(b))
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
		var found []string
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("accepted %q, not a JSON object: %v", body, err)
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("accepted %q, not a JSON object: %v", body, err)
			}
			if k := tok.(string); bytes.EqualFold([]byte(k), []byte("recordId")) {
				found = append(found, k+"="+string(v))
			}
		}
		if want := []string{"recordId=" + digits}; len(found) != 1 || found[0] != want[0] {
			t.Fatalf("ParseTrigger(%q) = %d; the body's recordId keys are %q, want %q", body, id, found, want)
		}
		if _, err := dec.Token(); err != nil {
			t.Fatalf("accepted %q: %v", body, err)
		}
		if dec.More() || !json.Valid(b) {
			t.Fatalf("accepted %q with trailing text", body)
		}
	})
}
