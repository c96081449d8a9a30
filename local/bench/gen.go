package bench

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// genSpec says what data to generate. The same spec and seed always give
// the same rows.
type genSpec struct {
	Seed        int64 `json:"seed"`
	Users       int   `json:"users"`
	Withdrawals int   `json:"withdrawals"`
	Payments    int   `json:"payments"`
	Tags        int   `json:"tags"`
	MaxTags     int   `json:"maxTagsPerUser"`
	// Skew puts half the withdrawals and payments in the first 1% of the
	// users (hotUsers), instead of a fifth in the first 5%.
	Skew bool `json:"skew,omitempty"`
}

// hotUsers is how many users hold half the activity of a skewed data set.
func hotUsers(users int) int { return max(1, users/100) }

var (
	year2026 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	year2025 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	yearSecs  = 365 * 24 * 3600
	sqlLayout = "2006-01-02 15:04:05"
)

// table is one source table and its deterministic row generator.
type table struct {
	db   *sql.DB
	name string
	cols []string
	// gen calls emit once per row, in a fixed order; rec is reused.
	gen func(ctx context.Context, emit func(rec []string) error) (int, error)
}

// splitmix64 gives each user a stable home currency without keeping state.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// homeCurrency: three users in four pay in USD, the rest in EUR.
func homeCurrency(seed int64, user int) string {
	if splitmix64(uint64(seed)<<32^uint64(user))%4 == 0 {
		return "EUR"
	}
	return "USD"
}

func otherCurrency(c string) string {
	if c == "USD" {
		return "EUR"
	}
	return "USD"
}

// weighted picks one of values by integer weights summing to 100.
func weighted(rng *rand.Rand, values []string, weights []int) string {
	n := rng.Intn(100)
	for i, w := range weights {
		if n < w {
			return values[i]
		}
		n -= w
	}
	return values[len(values)-1]
}

func amount(rng *rand.Rand, maxCents int) string {
	c := rng.Intn(maxCents) + 1
	return strconv.Itoa(c/100) + "." + fmt.Sprintf("%02d", c%100)
}

func tsIn(rng *rand.Rand, start time.Time) string {
	return start.Add(time.Duration(rng.Intn(yearSecs)) * time.Second).Format(sqlLayout)
}

// pickUser: a fifth of the activity comes from the first 5% of users;
// skewed, half of it from the first 1%.
func pickUser(rng *rand.Rand, users int, skew bool) int {
	if skew {
		if rng.Intn(2) == 0 {
			return 1 + rng.Intn(hotUsers(users))
		}
		return 1 + rng.Intn(users)
	}
	if rng.Intn(5) == 0 {
		return 1 + rng.Intn(max(1, users/20))
	}
	return 1 + rng.Intn(users)
}

func tables(s genSpec, user, fund *sql.DB) []table {
	return []table{
		{db: user, name: "vs_user_tag_relation", cols: []string{"id", "user_id", "tag_id", "created_at"},
			gen: func(ctx context.Context, emit func([]string) error) (int, error) {
				rng := rand.New(rand.NewSource(s.Seed*1_000_003 + 1))
				rec := make([]string, 4)
				id := 0
				tags := make([]int, 0, s.MaxTags)
				for u := 1; u <= s.Users; u++ {
					if u%10000 == 0 && ctx.Err() != nil {
						return id, ctx.Err()
					}
					k := rng.Intn(s.MaxTags + 1)
					tags = tags[:0]
					for len(tags) < k {
						t := 1 + rng.Intn(s.Tags)
						dup := false
						for _, x := range tags {
							dup = dup || x == t
						}
						if !dup {
							tags = append(tags, t)
						}
					}
					// 1% of tagged users have one (user, tag) stored twice.
					if k > 0 && rng.Intn(100) == 0 {
						tags = append(tags, tags[0])
					}
					for _, t := range tags {
						id++
						rec[0], rec[1], rec[2], rec[3] = strconv.Itoa(id), strconv.Itoa(u), strconv.Itoa(t), tsIn(rng, year2025)
						if err := emit(rec); err != nil {
							return id, err
						}
					}
				}
				return id, nil
			}},
		{db: fund, name: "vs_withdraw", cols: []string{"id", "user_id", "amount", "currency", "status", "created_at"},
			gen: func(ctx context.Context, emit func([]string) error) (int, error) {
				rng := rand.New(rand.NewSource(s.Seed*1_000_003 + 2))
				rec := make([]string, 6)
				statuses := []string{"SUCCESS", "PENDING", "FAILED", "REJECTED"}
				weights := []int{80, 10, 6, 4}
				for id := 1; id <= s.Withdrawals; id++ {
					if id%10000 == 0 && ctx.Err() != nil {
						return id, ctx.Err()
					}
					u := pickUser(rng, s.Users, s.Skew)
					cur := homeCurrency(s.Seed, u)
					if rng.Intn(10) == 0 {
						cur = otherCurrency(cur)
					}
					rec[0], rec[1], rec[2], rec[3] = strconv.Itoa(id), strconv.Itoa(u), amount(rng, 500_000), cur
					rec[4], rec[5] = weighted(rng, statuses, weights), tsIn(rng, year2026)
					if err := emit(rec); err != nil {
						return id, err
					}
				}
				return s.Withdrawals, nil
			}},
		{db: fund, name: "vs_payment", cols: []string{"id", "user_id", "amount", "currency", "status", "created_at"},
			gen: func(ctx context.Context, emit func([]string) error) (int, error) {
				rng := rand.New(rand.NewSource(s.Seed*1_000_003 + 3))
				rec := make([]string, 6)
				statuses := []string{"SUCCESS", "PENDING", "FAILED", "REFUNDED"}
				weights := []int{85, 8, 5, 2}
				for id := 1; id <= s.Payments; id++ {
					if id%10000 == 0 && ctx.Err() != nil {
						return id, ctx.Err()
					}
					u := pickUser(rng, s.Users, s.Skew)
					cur := homeCurrency(s.Seed, u)
					if rng.Intn(100) < 15 {
						cur = otherCurrency(cur)
					}
					rec[0], rec[1], rec[2], rec[3] = strconv.Itoa(id), strconv.Itoa(u), amount(rng, 200_000), cur
					rec[4], rec[5] = weighted(rng, statuses, weights), tsIn(rng, year2026)
					if err := emit(rec); err != nil {
						return id, err
					}
				}
				return s.Payments, nil
			}},
	}
}

// genResult is how one table was loaded, step by step.
type genResult struct {
	Table      string   `json:"table"`
	Rows       int      `json:"rows"`
	Method     string   `json:"method"`
	Indexes    []string `json:"indexes"`    // secondary indexes built after the load
	LoadSec    float64  `json:"loadSec"`    // rows into the table without its secondary indexes
	IndexSec   float64  `json:"indexSec"`   // ALTER TABLE … ADD INDEX, all in one statement
	AnalyzeSec float64  `json:"analyzeSec"` // ANALYZE TABLE
	Seconds    float64  `json:"seconds"`    // all steps
}

// generate loads every table, the tables concurrently. Each table's
// secondary indexes (as its DDL in shared/report declares them) are
// dropped first and built after the load: inserting into existing index
// B-trees is what made 10M withdrawals take 32 minutes. method is "infile"
// (LOAD DATA LOCAL INFILE from a registered reader, falling back to INSERT
// if the server refuses it) or "insert" (1000-row INSERTs, 50 per
// transaction). progress, if set, is told each step as it ends.
func generate(ctx context.Context, s genSpec, user, fund *sql.DB, runID, method string, progress func(format string, a ...any)) ([]genResult, error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	// The tables load concurrently; progress is told one step at a time.
	var progressMu sync.Mutex
	tell := progress
	progress = func(format string, a ...any) {
		progressMu.Lock()
		defer progressMu.Unlock()
		tell(format, a...)
	}
	ts := tables(s, user, fund)
	out := make([]genResult, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := generateTable(ctx, t, runID, method, progress)
			out[i] = r
			if err != nil {
				errs[i] = fmt.Errorf("generate %s: %w", t.name, err)
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func generateTable(ctx context.Context, t table, runID, method string, progress func(string, ...any)) (genResult, error) {
	r := genResult{Table: t.name, Method: method}
	start := time.Now()
	idx, err := secondaryIndexes(ctx, t.db, t.name)
	if err != nil {
		return r, err
	}
	for _, x := range idx {
		r.Indexes = append(r.Indexes, x.name)
	}
	if err := alterIndexes(ctx, t.db, t.name, idx, false); err != nil {
		return r, err
	}

	lstart := time.Now()
	n := 0
	if method == "infile" {
		n, err = loadInfile(ctx, t, runID)
		if err != nil && ctx.Err() == nil && refusedInfile(err) {
			r.Method = "insert"
			if _, err := t.db.ExecContext(ctx, "TRUNCATE TABLE "+t.name); err != nil {
				return r, fmt.Errorf("truncate: %w", err)
			}
		}
	}
	if r.Method == "insert" {
		n, err = loadInsert(ctx, t)
	}
	if err != nil {
		return r, fmt.Errorf("load: %w", err)
	}
	if err := checkCount(ctx, t, n); err != nil {
		return r, err
	}
	r.Rows, r.LoadSec = n, time.Since(lstart).Seconds()
	progress("  %-22s %9d rows loaded in %6.2fs (%s, no secondary index)", t.name, n, r.LoadSec, r.Method)

	istart := time.Now()
	if err := alterIndexes(ctx, t.db, t.name, idx, true); err != nil {
		return r, err
	}
	r.IndexSec = time.Since(istart).Seconds()
	progress("  %-22s %9s indexes %s built in %6.2fs", t.name, "", strings.Join(r.Indexes, ", "), r.IndexSec)

	astart := time.Now()
	if _, err := t.db.ExecContext(ctx, "ANALYZE TABLE "+t.name); err != nil {
		return r, fmt.Errorf("analyze: %w", err)
	}
	r.AnalyzeSec = time.Since(astart).Seconds()
	r.Seconds = time.Since(start).Seconds()
	progress("  %-22s %9s analyzed in %6.2fs; %6.2fs in all", t.name, "", r.AnalyzeSec, r.Seconds)
	return r, nil
}

// index is one secondary index of a table.
type index struct {
	name   string
	unique bool
	cols   []string // quoted, with a prefix length where there is one
}

// secondaryIndexes reads the table's indexes other than the primary key.
func secondaryIndexes(ctx context.Context, db *sql.DB, table string) ([]index, error) {
	rows, err := db.QueryContext(ctx, `SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME <> 'PRIMARY'
ORDER BY INDEX_NAME, SEQ_IN_INDEX`, table)
	if err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", table, err)
	}
	defer rows.Close()
	var out []index
	for rows.Next() {
		var (
			name, col string
			nonUnique int
			sub       sql.NullInt64
		)
		if err := rows.Scan(&name, &nonUnique, &col, &sub); err != nil {
			return nil, fmt.Errorf("read indexes of %s: %w", table, err)
		}
		if len(out) == 0 || out[len(out)-1].name != name {
			out = append(out, index{name: name, unique: nonUnique == 0})
		}
		c := quoteIdent(col)
		if sub.Valid {
			c += fmt.Sprintf("(%d)", sub.Int64)
		}
		out[len(out)-1].cols = append(out[len(out)-1].cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", table, err)
	}
	return out, nil
}

// alterIndexes adds (or drops) every index in idx in one ALTER TABLE, so
// the table is read once for all of them.
func alterIndexes(ctx context.Context, db *sql.DB, table string, idx []index, add bool) error {
	if len(idx) == 0 {
		return nil
	}
	parts := make([]string, len(idx))
	for i, x := range idx {
		switch {
		case !add:
			parts[i] = "DROP INDEX " + quoteIdent(x.name)
		case x.unique:
			parts[i] = "ADD UNIQUE INDEX " + quoteIdent(x.name) + " (" + strings.Join(x.cols, ", ") + ")"
		default:
			parts[i] = "ADD INDEX " + quoteIdent(x.name) + " (" + strings.Join(x.cols, ", ") + ")"
		}
	}
	q := "ALTER TABLE " + quoteIdent(table) + " " + strings.Join(parts, ", ")
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	return nil
}

// refusedInfile tells a server or driver that will not do LOCAL INFILE
// from a real data error.
func refusedInfile(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1148 || me.Number == 3948 || me.Number == 4166
	}
	return strings.Contains(err.Error(), "local infile")
}

func checkCount(ctx context.Context, t table, want int) error {
	var got int
	if err := t.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.name).Scan(&got); err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%d rows in the table, %d generated", got, want)
	}
	return nil
}

// loadInfile streams the generator through a pipe into LOAD DATA LOCAL
// INFILE: nothing but a 1 MiB buffer is held in memory.
func loadInfile(ctx context.Context, t table, runID string) (int, error) {
	name := "bench_" + runID + "_" + t.name
	pr, pw := io.Pipe()
	mysql.RegisterReaderHandler(name, func() io.Reader { return pr })
	defer mysql.DeregisterReaderHandler(name)
	var n int
	done := make(chan struct{})
	go func() {
		defer close(done)
		bw := bufio.NewWriterSize(pw, 1<<20)
		var err error
		n, err = t.gen(ctx, func(rec []string) error {
			for i, f := range rec {
				if i > 0 {
					bw.WriteByte('\t')
				}
				bw.WriteString(f)
			}
			return bw.WriteByte('\n')
		})
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	conn, err := t.db.Conn(ctx)
	if err != nil {
		pr.Close()
		<-done
		return 0, err
	}
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' INTO TABLE "+t.name+
		" CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '' LINES TERMINATED BY '\\n' ("+
		strings.Join(t.cols, ", ")+")")
	// Unblocks the generator if the statement stopped reading early.
	pr.CloseWithError(errors.New("load data finished"))
	<-done
	return n, err
}

// loadInsert sends multi-row INSERTs of 1000 rows, 50 statements per
// transaction. The values are generated here (digits, fixed words), never
// input, so they are written as literals.
func loadInsert(ctx context.Context, t table) (int, error) {
	const rowsPerStmt, stmtsPerTx = 1000, 50
	prefix := "INSERT INTO " + t.name + " (" + strings.Join(t.cols, ", ") + ") VALUES "
	var (
		b     strings.Builder
		rows  int
		stmts int
		tx    *sql.Tx
	)
	flush := func(commit bool) error {
		if rows > 0 {
			if tx == nil {
				var err error
				if tx, err = t.db.BeginTx(ctx, nil); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, b.String()); err != nil {
				return err
			}
			b.Reset()
			rows = 0
			stmts++
		}
		if tx != nil && (commit || stmts == stmtsPerTx) {
			err := tx.Commit()
			tx, stmts = nil, 0
			return err
		}
		return nil
	}
	n, err := t.gen(ctx, func(rec []string) error {
		if rows == 0 {
			b.WriteString(prefix)
		} else {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for i, f := range rec {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('\'')
			b.WriteString(f)
			b.WriteByte('\'')
		}
		b.WriteByte(')')
		rows++
		if rows == rowsPerStmt {
			return flush(false)
		}
		return nil
	})
	if err == nil {
		err = flush(true)
	}
	if err != nil && tx != nil {
		tx.Rollback()
	}
	return n, err
}
