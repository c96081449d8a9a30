package seed

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/report"
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
	}
}

// TestGoldenFilesPerType checks that every report type has both golden
// files, with the byte-order mark exactly when the report writes one, the
// header its columns, and LF line ends.
func TestGoldenFilesPerType(t *testing.T) {
	for _, ex := range Examples() {
		rep, _ := report.Lookup(ex.Type)
		g := string(Golden(ex.Golden))
		if strings.HasPrefix(g, bom) != rep.CSV.BOM || strings.Count(g, bom) > 1 {
			t.Errorf("golden %s: byte-order mark %v (%d), report's CSV.BOM %v", ex.Golden, strings.HasPrefix(g, bom), strings.Count(g, bom), rep.CSV.BOM)
		}
		recs := parseCSV(t, []byte(strings.TrimPrefix(g, bom)))
		if diff := cmp.Diff(rep.Header, recs[0]); diff != "" {
			t.Errorf("golden %s header (-report +file):\n%s", ex.Golden, diff)
		}
		if strings.Contains(g, "\r\n") || !strings.HasSuffix(g, "\n") {
			t.Errorf("golden %s: want LF line endings with a trailing newline", ex.Golden)
		}
		if strings.HasPrefix(ex.Golden, "empty_") != (len(recs) == 1) {
			t.Errorf("golden %s has %d rows: the empty example has none, the example some", ex.Golden, len(recs)-1)
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

// runOracle computes a report with every shape of its reference query
// (the benchmark uses the same ones): the shapes must agree, and the
// result is returned once.
func runOracle(t *testing.T, db *sql.DB, userDB, fundDB, typ, paramsJSON string, exact bool) []byte {
	t.Helper()
	rep, ok := report.Lookup(typ)
	if !ok {
		t.Fatalf("no report type %s", typ)
	}
	p, err := report.ParseParams([]byte(paramsJSON))
	if err != nil {
		t.Fatal(err)
	}
	refDB := report.RefDB{Names: map[string]string{"plt_user": userDB, "plt_fund": fundDB}, Exact: exact}
	var first []byte
	for _, o := range Oracles(rep, refDB, p) {
		var buf bytes.Buffer
		n, err := o.WriteCSV(context.Background(), db, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := int64(len(parseCSV(t, bytes.TrimPrefix(buf.Bytes(), []byte(bom)))) - 1); got != n {
			t.Errorf("oracle %s reported %d rows, wrote %d", o.Name(), n, got)
		}
		if first == nil {
			first = buf.Bytes()
		} else if diff := cmp.Diff(string(first), buf.String()); diff != "" {
			t.Errorf("oracle %s differs from (%s) (-first +this):\n%s", o.Name(), rep.Reference[0].Name, diff)
		}
	}
	return first
}

// bom is the UTF-8 byte-order mark, first in the files of a report whose
// CSV.BOM is set.
const bom = "\uFEFF"

func parseCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v", err)
	}
	return recs
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
	admin, userName, fundName, userDB, fundDB := throwawayDatabases(t, "seedtest")
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
		for _, ex := range Examples() {
			got := runOracle(t, admin, userName, fundName, ex.Type, ex.Params, true)
			if diff := cmp.Diff(string(Golden(ex.Golden)), string(got)); diff != "" {
				t.Errorf("pass %d: %s (-want +got):\n%s", pass, ex.Golden, diff)
			}
			// The pipeline compares status/currency with the column
			// collation (case-insensitive, PAD SPACE); the data must not
			// make that differ from an exact comparison.
			if coll := runOracle(t, admin, userName, fundName, ex.Type, ex.Params, false); !bytes.Equal(coll, got) {
				t.Errorf("pass %d: %s depends on the collation (-binary +collation):\n%s", pass, ex.Golden, cmp.Diff(string(got), string(coll)))
			}
		}
	}
}

// throwawayDatabases creates two empty databases named {prefix}_{random}_user
// and _fund on the local MariaDB, dropped when t ends, and returns the
// server connection, their names and connections to each. It fails
// (skips under -short) when MariaDB is not reachable.
func throwawayDatabases(t *testing.T, prefix string) (admin *sql.DB, userName, fundName string, userDB, fundDB *sql.DB) {
	t.Helper()
	ctx := context.Background()
	admin = openDB(t, "")
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
	base := prefix + "_" + hex.EncodeToString(rnd[:])
	userName, fundName = base+"_user", base+"_fund"
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
	return admin, userName, fundName, openDB(t, userName), openDB(t, fundName)
}
