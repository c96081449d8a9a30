package seed

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// What "matching" means for the payment columns: a withdrawal's payments
// are those of its (user_id, currency) with status 'SUCCESS', compared
// with the columns' collation (here the databases' default,
// utf8mb4_general_ci: case-insensitive, trailing spaces ignored). So
// withdrawals in USD, usd and Usd show the same totals, counting payments
// in any of those spellings and with status 'success' or 'SUCCESS ' (a
// byte-for-byte comparison would count 1 payment for USD and none for the
// others). That is the database's own equality, which the pipeline's
// stage-2 query uses (shared/report TestRunPaymentComparedBySQL), and the
// reference query agrees. The README says so where it describes the report.
func TestMatchingFollowsCollation(t *testing.T) {
	ctx := context.Background()
	admin, userName, fundName, userDB, fundDB := throwawayDatabases(t, "seedmatch")
	for _, s := range []struct {
		db    *sql.DB
		stmts []string
	}{
		{userDB, []string{testSchemaUser, "INSERT INTO vs_user_tag_relation VALUES (1, 1, 3, '2025-12-01 00:00:00')"}},
		{fundDB, []string{testSchemaWithdraw, testSchemaPayment,
			`INSERT INTO vs_withdraw VALUES
			  (1, 1, 10.00, 'USD', 'SUCCESS', '2026-01-10 00:00:00'),
			  (2, 1, 20.00, 'usd', 'SUCCESS', '2026-01-11 00:00:00'),
			  (3, 1, 30.00, 'Usd', 'SUCCESS', '2026-01-12 00:00:00')`,
			`INSERT INTO vs_payment VALUES
			  (1, 1, 1.00, 'USD', 'SUCCESS', '2026-01-05 00:00:00'),
			  (2, 1, 2.00, 'usd', 'success', '2026-01-06 00:00:00'),
			  (3, 1, 4.00, 'Usd', 'SUCCESS ', '2026-01-07 00:00:00'),
			  (4, 1, 8.00, 'USD', 'FAILED', '2026-01-08 00:00:00'),
			  (5, 1, 16.00, 'EUR', 'SUCCESS', '2026-01-09 00:00:00')`,
		}},
	} {
		for _, stmt := range s.stmts {
			if _, err := s.db.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	const params = `{"tagIds":[3],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`
	// currency, payment_count, payment_total of each CSV row.
	totals := func() [][]string {
		rows, err := csv.NewReader(bytes.NewReader(runOracle(t, admin, userName, fundName, "withdraw_by_tag_with_payments", params, false))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var out [][]string
		for _, r := range rows[1:] {
			out = append(out, []string{r[4], r[7], r[8]})
		}
		return out
	}
	want := [][]string{{"USD", "3", "7.00"}, {"usd", "3", "7.00"}, {"Usd", "3", "7.00"}}
	if diff := cmp.Diff(want, totals()); diff != "" {
		t.Errorf("payment columns by the columns' collation (-want +got):\n%s", diff)
	}
}
