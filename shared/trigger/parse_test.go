package trigger

import (
	"errors"
	"strings"
	"testing"
)

// TestParseTriggerKeys: encoding/json matches keys case-insensitively and
// keeps the last of duplicates, so a body naming two records, or naming
// one under a key upstream never sends, must be refused rather than guessed.
func TestParseTriggerKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want int64  // 0: refused
		says string // what the refusal must say
	}{
		{`{"recordId":1,"recordId":2}`, 0, "more than once"},
		{`{"recordId":2,"recordId":2}`, 0, "more than once"},
		{`{"recordId":1,"RecordId":2}`, 0, `"RecordId"`},
		{`{"RecordId":2}`, 0, `"RecordId"`},
		{`{"recordid":2}`, 0, `"recordid"`},
		{`{"RECORDID":2}`, 0, `"RECORDID"`},
		{`{"recordID":2,"recordId":1}`, 0, `"recordID"`},
		{`{"recordId":1,"x":{"recordId":2}}`, 1, ""},              // nested: not the trigger's key
		{`{"record\u0049d":3}`, 3, ""},                            // the same key, escaped
		{`{"recordId":1,"record\u0049d":2}`, 0, "more than once"}, // a duplicate, escaped
		{`{"recordId":1,"reportType":"withdraw_by_tag","extra":[1,{"a":null}]}`, 1, ""},
		{`{"recordId":1}{"recordId":2}`, 0, ""},
		{`{"recordId":1},`, 0, ""},
		{`{"recordId":1,}`, 0, ""},
		{`{"recordId":01}`, 0, ""},
		{`{"recordId":1 2}`, 0, ""},
		{`{"recordId":true}`, 0, ""},
		{`{"recordId":{"v":1}}`, 0, ""},
		{`{"recordId":[1]}`, 0, ""},
		{`{"recordId"}`, 0, ""},
		{`{1:1}`, 0, ""},
		{"{\"recordId\":1}\x00", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTrigger([]byte(tt.body))
			if tt.want != 0 {
				if err != nil || got != tt.want {
					t.Errorf("ParseTrigger(%s) = %d, %v; want %d", tt.body, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrNotTrigger) || got != 0 {
				t.Fatalf("ParseTrigger(%s) = %d, %v; want 0 and an error wrapping ErrNotTrigger", tt.body, got, err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("ParseTrigger(%s): error %q does not say %s", tt.body, err, tt.says)
			}
		})
	}
}
