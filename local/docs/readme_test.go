package docs

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadmeReasonTableIsCurrent: the committed README's troubleshooting
// table is the one the registry generates.
func TestReadmeReasonTableIsCurrent(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := WithReasonTable(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("README.md's troubleshooting table is stale: run go generate ./local/docs (-want +got):\n%s", diff)
	}
}

// TestWithReasonTable: only the text between the markers changes, and a
// README without them is an error, not a silent no-op.
func TestWithReasonTable(t *testing.T) {
	t.Parallel()
	in := "intro\n" + beginMarker + "\nold table\n" + endMarker + "\nrest\n"
	got, err := WithReasonTable(in)
	if err != nil {
		t.Fatal(err)
	}
	want := "intro\n" + beginMarker + "\n" + ReasonTable() + endMarker + "\nrest\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !strings.Contains(got, "| `cancelled by operator` |") {
		t.Errorf("table lacks the cancel reason:\n%s", got)
	}
	if _, err := WithReasonTable("no markers"); err == nil {
		t.Error("WithReasonTable without markers: no error")
	}
}
