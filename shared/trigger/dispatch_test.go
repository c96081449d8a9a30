package trigger

import (
	"errors"
	"testing"
)

func TestParseTrigger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want int64
	}{
		{"1111", 1111},
		{"  1111\n", 1111},
		{"\t1111\r\n", 1111},
		{`{"recordId":1111}`, 1111},
		{` {"recordId": 1111} `, 1111},
		{`{"recordId":1111,"reportType":"withdraw_by_tag"}`, 1111},
		{"1", 1},
		{"9223372036854775807", 9223372036854775807},
		{`"1111"`, 1111}, // Spring's Jackson2JsonMessageConverter, a String ID
		{` "1111"` + "\n", 1111},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTrigger([]byte(tt.body))
			if err != nil || got != tt.want {
				t.Errorf("ParseTrigger(%q) = %d, %v; want %d", tt.body, got, err, tt.want)
			}
		})
	}
}

func TestParseTriggerRejects(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		"", "   \n", "abc", "-1", "+1", "0", "00", "1.5", "1e3", "0x10", "12 34", "1111abc",
		"9223372036854775808",  // int64 overflow, 19 digits
		"12345678901234567890", // 20 digits
		`{"id":1}`, `{"recordId":"x"}`, `{"recordId":0}`, `{"recordId":-5}`, `{"recordId":1.5}`,
		`{"recordId":1e3}`, `{"recordId":null}`, `{"recordId":12345678901234567890}`,
		`{"recordId":1111`, `{}`, `[1111]`, `"1111`, `"1111" "2"`, `""`, `"0"`, `"x"`, "null", `{"recordId":1111}xyz`, `{"recordId":"1111"}`,
	} {
		t.Run(body, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTrigger([]byte(body))
			if !errors.Is(err, ErrNotTrigger) || got != 0 {
				t.Errorf("ParseTrigger(%q) = %d, %v; want 0 and an error wrapping ErrNotTrigger", body, got, err)
			}
		})
	}
}

func TestOutcomeString(t *testing.T) {
	t.Parallel()
	for o, want := range map[Outcome]string{Dispatched: "dispatched", Ignored: "ignored (record final)"} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", o, got, want)
		}
	}
}
