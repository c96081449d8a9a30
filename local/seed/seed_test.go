package seed

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the hand-written rows in golden_rows_test.go")

// Table DDL as given by the specification; the real schema lives elsewhere.
const (
	testSchemaUser = `CREATE TABLE vs_user_tag_relation (
  id BIGINT PRIMARY KEY,
  user_id BIGINT NOT NULL,
  tag_id BIGINT NOT NULL,
  created_at DATETIME NOT NULL)`
	testSchemaWithdraw = `CREATE TABLE vs_withdraw (
  id BIGINT PRIMARY KEY,
  user_id BIGINT NOT NULL,
  amount DECIMAL(18,2) NOT NULL,
  currency CHAR(3) NOT NULL,
  status VARCHAR(16) NOT NULL,
  created_at DATETIME NOT NULL)`
	testSchemaPayment = `CREATE TABLE vs_payment (
  id BIGINT PRIMARY KEY,
  user_id BIGINT NOT NULL,
  amount DECIMAL(18,2) NOT NULL,
  currency CHAR(3) NOT NULL,
  status VARCHAR(16) NOT NULL,
  created_at DATETIME NOT NULL)`
)

func encodeCSV(t *testing.T, records [][]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(records); err != nil {
		t.Fatalf("csv: %v", err)
	}
	return buf.Bytes()
}

// TestGoldenFiles checks that the checked-in golden files are exactly the
// hand-derived rows of golden_rows_test.go written by encoding/csv.
// With -update it (re)writes them instead.
func TestGoldenFiles(t *testing.T) {
	for name, records := range handGolden() {
		want := encodeCSV(t, records)
		if *update {
			path := filepath.Join("testdata", "golden", name)
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
			continue
		}
		if diff := cmp.Diff(string(want), string(Golden(name))); diff != "" {
			t.Errorf("golden %s differs from hand-written rows (-hand +golden); run go test -run TestGoldenFiles -update:\n%s", name, diff)
		}
	}
}

// TestGoldenQuoting pins bytes of the golden files that the framing and
// the formula escaping must produce, independently of the hand rows.
func TestGoldenQuoting(t *testing.T) {
	for name, want := range map[string][]string{
		GoldenWithdrawByTag: {
			`,"FAILED,RETRY",`, `,"NEEDS""REVIEW",`, "\n1,101,3;10,12.50,USD,SUCCESS,2026-01-05T10:00:00Z\n",
			"\n31,112,10,-12.50,USD,'@SUM(A1),2026-01-14T09:00:00Z\n",
			"\n32,112,10,3.00,'=1+,'+cmd,2026-01-14T10:00:00Z\n",
			"\n33,112,10,4.00,'-US,\"'=HYPERLINK(\"\"http\",2026-01-14T11:00:00Z\n",
			"\n34,112,10,5.00,'=1+,'\tSUCCESS,2026-01-14T12:00:00Z\n",
			"\n35,112,10,6.00,'@EU,\"'\rPENDING\",2026-01-14T13:00:00Z\n",
			"\n36,112,10,1.00,USD,'-2+3,2026-01-14T14:00:00Z\n",
			"\n37,112,10,2.00,USD,A=1+2@B,2026-01-14T15:00:00Z\n",
		},
		GoldenWithdrawByTagWithPayments: {
			"\n33,112,10,4.00,'-US,\"'=HYPERLINK(\"\"http\",2026-01-14T11:00:00Z,1,-1.25\n",
			"\n35,112,10,6.00,'@EU,\"'\rPENDING\",2026-01-14T13:00:00Z,0,0.00\n",
		},
	} {
		g := string(Golden(name))
		for _, s := range want {
			if !strings.Contains(g, s) {
				t.Errorf("golden %s does not contain %q", name, s)
			}
		}
		// The one carriage return is inside w 35's quoted status.
		if !strings.HasSuffix(g, "\n") || strings.Contains(g, "\r\n") || strings.Count(g, "\r") != 1 {
			t.Errorf("golden %s: want LF line endings with a trailing newline, and one CR, inside a cell", name)
		}
		if strings.HasPrefix(g, "\uFEFF") {
			t.Errorf("golden %s starts with a byte-order mark", name)
		}
	}
}

func TestGoldenUnknownPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Golden(unknown) did not panic")
		}
	}()
	Golden("nope.csv")
}

func TestStatements(t *testing.T) {
	for _, tc := range []struct {
		script string
		n      int
	}{{userSQL, 1}, {fundSQL, 2}} {
		stmts := statements(tc.script)
		if len(stmts) != tc.n {
			t.Fatalf("got %d statements, want %d: %q", len(stmts), tc.n, stmts)
		}
		for _, s := range stmts {
			if !strings.HasPrefix(s, "REPLACE INTO ") || strings.HasSuffix(s, ";") || strings.Contains(s, "--") {
				t.Errorf("bad statement %q", s)
			}
			up := strings.ToUpper(s)
			for _, bad := range []string{"DROP ", "DELETE ", "CREATE ", "PLT_USER", "PLT_FUND"} {
				if strings.Contains(up, bad) {
					t.Errorf("statement contains %q: %q", bad, s)
				}
			}
		}
	}
}

type params struct {
	TagIDs []int64   `json:"tagIds"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

func parseParams(t *testing.T, s string) params {
	t.Helper()
	var p params
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("params %s: %v", s, err)
	}
	if len(p.TagIDs) == 0 || !p.From.Before(p.To) {
		t.Fatalf("params %s: bad values", s)
	}
	return p
}

func dsnBase() string {
	if b := os.Getenv("SEED_TEST_DSN_BASE"); b != "" {
		return b
	}
	return "root@tcp(127.0.0.1:3306)/"
}

func openDB(t *testing.T, db string) *sql.DB {
	t.Helper()
	d, err := sql.Open("mysql", dsnBase()+db+"?parseTime=true&loc=UTC")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// formulaEscaped is the CSV formula-injection rule in SQL, for the columns
// that declare it: a ' in front of a value whose first byte is '=', '+',
// '-', '@', tab or carriage return. ASCII() reads the first byte (0 for an
// empty string), so no collation takes part.
func formulaEscaped(col string) string {
	return fmt.Sprintf(`CASE WHEN ASCII(%[1]s) IN (ASCII('='), ASCII('+'), ASCII('-'), ASCII('@'), 9, 13)
    THEN CONCAT('''', %[1]s) ELSE %[1]s END`, col)
}

// oracleQuery computes a report in one cross-database SQL statement.
// exact selects byte-wise comparison for status/currency instead of the
// column collation; the seed data must give the same result either way.
func oracleQuery(userDB, fundDB string, nTags int, withPayments, exact bool) string {
	cmpOp := "="
	if exact {
		cmpOp = "= BINARY"
	}
	payWhere := fmt.Sprintf(`FROM %[1]s.vs_payment p
    WHERE p.user_id = w.user_id AND p.status %[2]s 'SUCCESS' AND p.currency %[2]s w.currency
      AND p.created_at >= ? AND p.created_at < ?`, "`"+fundDB+"`", cmpOp)
	payCols := ""
	if withPayments {
		payCols = fmt.Sprintf(`,
  (SELECT COUNT(*) %[1]s) AS payment_count,
  (SELECT CAST(COALESCE(SUM(p.amount), 0) AS DECIMAL(40,2)) %[1]s) AS payment_total`, payWhere)
	}
	in := strings.TrimSuffix(strings.Repeat("?,", nTags), ",")
	return fmt.Sprintf(`SELECT w.id, w.user_id, t.tag_ids, w.amount, %s, %s,
  DATE_FORMAT(w.created_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ')%s
FROM %s.vs_withdraw w
JOIN (SELECT r.user_id, GROUP_CONCAT(DISTINCT r.tag_id ORDER BY r.tag_id SEPARATOR ';') AS tag_ids
      FROM %s.vs_user_tag_relation r
      WHERE r.tag_id IN (%s)
      GROUP BY r.user_id) t ON t.user_id = w.user_id
WHERE w.created_at >= ? AND w.created_at < ?
ORDER BY w.user_id, w.id`, formulaEscaped("w.currency"), formulaEscaped("w.status"), payCols, "`"+fundDB+"`", "`"+userDB+"`", in)
}

func runOracle(t *testing.T, db *sql.DB, userDB, fundDB, paramsJSON string, withPayments, exact bool) []byte {
	t.Helper()
	p := parseParams(t, paramsJSON)
	const layout = "2006-01-02 15:04:05"
	from, to := p.From.UTC().Format(layout), p.To.UTC().Format(layout)
	var args []any
	if withPayments {
		args = append(args, from, to, from, to)
	}
	for _, id := range p.TagIDs {
		args = append(args, id)
	}
	args = append(args, from, to)

	header := headerWithdrawByTag
	if withPayments {
		header = headerWithdrawByTagWithPayments
	}
	records := [][]string{header}
	rows, err := db.QueryContext(context.Background(), oracleQuery(userDB, fundDB, len(p.TagIDs), withPayments, exact), args...)
	if err != nil {
		t.Fatalf("oracle query: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		rec := make([]string, len(header))
		ptrs := make([]any, len(rec))
		for i := range rec {
			ptrs[i] = &rec[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("oracle scan: %v", err)
		}
		records = append(records, rec)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("oracle rows: %v", err)
	}
	return encodeCSV(t, records)
}

func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOracle loads the seed into two throwaway databases on the local
// MariaDB and checks every golden file against one cross-database query.
func TestOracle(t *testing.T) {
	ctx := context.Background()
	admin := openDB(t, "")
	if err := admin.PingContext(ctx); err != nil {
		if testing.Short() {
			t.Skipf("MariaDB not reachable (%v); skipped in -short mode", err)
		}
		t.Fatalf("MariaDB not reachable at %q (set SEED_TEST_DSN_BASE): %v", dsnBase(), err)
	}

	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	prefix := "seedtest_" + hex.EncodeToString(rnd[:])
	userName, fundName := prefix+"_user", prefix+"_fund"
	for _, name := range []string{userName, fundName} {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"); err != nil {
			t.Fatalf("create database %s: %v", name, err)
		}
		t.Cleanup(func() {
			if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
				t.Errorf("drop database %s: %v", name, err)
			}
		})
	}
	userDB, fundDB := openDB(t, userName), openDB(t, fundName)
	for _, ddl := range []struct {
		db   *sql.DB
		stmt string
	}{{userDB, testSchemaUser}, {fundDB, testSchemaWithdraw}, {fundDB, testSchemaPayment}} {
		if _, err := ddl.db.ExecContext(ctx, ddl.stmt); err != nil {
			t.Fatalf("create table: %v", err)
		}
	}

	wantCounts := map[string]int{
		"`" + userName + "`.vs_user_tag_relation": 19,
		"`" + fundName + "`.vs_withdraw":          32,
		"`" + fundName + "`.vs_payment":           30,
	}
	for pass := 1; pass <= 2; pass++ { // the second pass checks idempotency
		if err := Apply(ctx, userDB, fundDB); err != nil {
			t.Fatalf("Apply pass %d: %v", pass, err)
		}
		for table, want := range wantCounts {
			if got := countRows(t, admin, table); got != want {
				t.Errorf("pass %d: %s has %d rows, want %d", pass, table, got, want)
			}
		}
		for _, tc := range []struct {
			golden       string
			params       string
			withPayments bool
		}{
			{GoldenWithdrawByTag, Params, false},
			{GoldenWithdrawByTagWithPayments, Params, true},
			{GoldenEmptyWithdrawByTag, EmptyParams, false},
			{GoldenEmptyWithdrawByTagWithPayments, EmptyParams, true},
		} {
			got := runOracle(t, admin, userName, fundName, tc.params, tc.withPayments, true)
			if diff := cmp.Diff(string(Golden(tc.golden)), string(got)); diff != "" {
				t.Errorf("pass %d: %s (-want +got):\n%s", pass, tc.golden, diff)
			}
			// The pipeline compares status/currency with the column
			// collation (case-insensitive, PAD SPACE); the data must not
			// make that differ from an exact comparison.
			if coll := runOracle(t, admin, userName, fundName, tc.params, tc.withPayments, false); !bytes.Equal(coll, got) {
				t.Errorf("pass %d: %s depends on the collation (-binary +collation):\n%s", pass, tc.golden, cmp.Diff(string(got), string(coll)))
			}
		}
	}
}
