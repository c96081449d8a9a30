package trigger_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// FuzzParseTrigger: ParseTrigger never panics, refuses with ErrNotTrigger,
// and what it accepts is unambiguous: the digits of the ID alone, or in a
// JSON string, or a JSON object whose one "recordId" key (no other key
// folds to it) holds them, or exactly the Java serialization of the ID as
// a Long, an Integer or a String of its digits (the layouts written out
// in spring_test.go), byte for byte.
func FuzzParseTrigger(f *testing.F) {
	long, integer, str := unhex(f, javaLongHead), unhex(f, javaIntegerHead), unhex(f, javaStringHead)
	for _, b := range [][]byte{
		binary.BigEndian.AppendUint64(bytes.Clone(long), 1111),
		binary.BigEndian.AppendUint64(bytes.Clone(long), 1<<63),
		binary.BigEndian.AppendUint32(bytes.Clone(integer), 1111),
		binary.BigEndian.AppendUint32(bytes.Clone(integer), 1<<31),
		append(bytes.Clone(str), 0, 4, '1', '1', '1', '1'),
		append(bytes.Clone(str), 0, 5, '1', '1', '1', '1'),
		append(bytes.Clone(str), 0, 2, '0', '7'),
		long[:len(long)-1],
	} {
		f.Add(b)
	}
	for _, s := range []string{
		`"1111"`, ` "0042" `, `""`, `"1111`, `"12345678901234567890"`, `"\u0031"`,
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
		if bytes.HasPrefix(body, long[:4]) {
			// Exactly one of the three layouts, with this ID.
			isLong := bytes.Equal(body, binary.BigEndian.AppendUint64(bytes.Clone(long), uint64(id)))
			isInt := id <= math.MaxInt32 && bytes.Equal(body, binary.BigEndian.AppendUint32(bytes.Clone(integer), uint32(id)))
			var isStr bool
			if s, ok := bytes.CutPrefix(body, str); ok && len(s) >= 2 && int(binary.BigEndian.Uint16(s)) == len(s)-2 {
				isStr = len(s) > 2 && string(bytes.TrimLeft(s[2:], "0")) == digits && len(bytes.Trim(s[2:], "0123456789")) == 0
			}
			if !isLong && !isInt && !isStr {
				t.Fatalf("ParseTrigger(%x) = %d, but the body is not that ID serialized as a Long, Integer or String", body, id)
			}
			return
		}
		b := bytes.TrimSpace(body)
		if q, ok := bytes.CutPrefix(b, []byte(`"`)); ok {
			if q, ok = bytes.CutSuffix(q, []byte(`"`)); !ok || string(bytes.TrimLeft(q, "0")) != digits {
				t.Fatalf("ParseTrigger(%q) = %d, but the body is not a JSON string of those digits", body, id)
			}
			return
		}
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
