package fault

import (
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"
)

func TestClassOf(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"plain error retries", base, Retry},
		{"permanent", Permanent(base), Fail},
		{"permanent wrapped", fmt.Errorf("listener: %w", Permanent(base)), Fail},
		{"parked", Parkf("no record"), Park},
		{"outermost wins", Parked(fmt.Errorf("x: %w", Permanent(base))), Park},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.err); got != tt.want {
			t.Errorf("%s: ClassOf = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !errors.Is(Permanent(base), base) {
		t.Error("Permanent hides the wrapped error from errors.Is")
	}
	if Permanent(nil) != nil || Parked(nil) != nil {
		t.Error("classifying nil must stay nil")
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	s := "ab" + "ção" // multi-byte runes at the cut
	for max := 0; max <= len(s)+1; max++ {
		got := Clip(s, max)
		if !utf8.ValidString(got) {
			t.Errorf("Clip(%q, %d) = %q: invalid UTF-8", s, max, got)
		}
		if len(s) <= max && got != s {
			t.Errorf("Clip(%q, %d) = %q, want it unchanged", s, max, got)
		}
		if len(s) > max && len(got) > max && max >= len("…") {
			t.Errorf("Clip(%q, %d) = %q: %d bytes", s, max, got, len(got))
		}
	}
}

func TestBody(t *testing.T) {
	t.Parallel()
	if got, want := Body([]byte("hello world"), 5), "hello… (11 bytes)"; got != want {
		t.Errorf("Body = %q, want %q", got, want)
	}
	if got, want := Body([]byte{0xff, 'a'}, 10), `"\xffa"`; got != want {
		t.Errorf("Body = %q, want %q", got, want)
	}
}
