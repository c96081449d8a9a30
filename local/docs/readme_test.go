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
	want, err := WithTables(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("README.md's troubleshooting or source-index table is stale: run go generate ./local/docs (-want +got):\n%s", diff)
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

// TestIndexTable: every index a source's DDL or Indexes declares is a row,
// with the functions that read its table.
func TestIndexTable(t *testing.T) {
	t.Parallel()
	got := IndexTable()
	for _, want := range []string{
		"| `plt_fund.vs_withdraw` | `idx_user` | `(user_id, id, created_at, amount, currency, status)` | `ListenWithdraw` |",
		"| `plt_fund.vs_payment` | `idx_user_paid` | `(user_id, id, status, created_at, amount, currency)` | `ListenPayment`, `ListenPaymentRange` |",
		"| `plt_user.vs_user_tag_relation` | `idx_tag_user` | `(tag_id, user_id)` | `ListenUserTagRelation` |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("index table lacks %s:\n%s", want, got)
		}
	}
	if _, err := WithIndexTable("no markers"); err == nil {
		t.Error("WithIndexTable without markers: no error")
	}
}
