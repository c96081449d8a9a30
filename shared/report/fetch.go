// Fetch runs a source's query and streams its rows into a dataset,
// in key order, one row in memory at a time.

package report

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/failreason"

	"github.com/fanoutexport/fanoutexport/shared/fault"
)

// TimeLayout is how DATETIME columns appear in datasets and CSVs.
const TimeLayout = "2006-01-02T15:04:05Z"

// RowLimitExceeded says a report's dataset or CSV passed Max rows
// (MAX_REPORT_ROWS). Its text is the record's whole reason: callers pass it
// on without a prefix (find it with errors.As).
type RowLimitExceeded struct{ Max int64 }

func (e *RowLimitExceeded) Error() string {
	return failreason.RowLimit.Text(e.Max)
}

// RowLimitError is the permanent error of a report over max rows.
func RowLimitError(max int64) error { return fault.Permanent(&RowLimitExceeded{Max: max}) }

// Fetch queries src for p and writes every row to out. With src.Input, the
// input dataset is read from in and fed to the query in batches; each
// batch's rows are in input order, so the output stays in key order.
func Fetch(ctx context.Context, db *sql.DB, src Source, p Params, in dataset.Store, out *dataset.Writer) error {
	return FetchLimit(ctx, db, src, p, Bounds{}, in, out, 0)
}

// FetchLimit is Fetch of one part's keys (b; the zero Bounds is every
// key) that stops with RowLimitError(maxRows) as soon as the dataset would
// pass maxRows rows, before writing that row; 0 or less means no limit.
func FetchLimit(ctx context.Context, db *sql.DB, src Source, p Params, b Bounds, in dataset.Store, out *dataset.Writer, maxRows int64) error {
	_, err := FetchRead(ctx, db, src, p, b, in, out, maxRows, ReadAuto)
	return err
}

// Read is how a source with Input reads its rows.
type Read int

// Reads. ReadAuto chooses from the input's density in the part's range.
const (
	ReadAuto    Read = iota
	ReadLookups      // Build, one statement per BatchSize input rows
	ReadScan         // Scan, one statement over the part's key range
)

func (r Read) String() string {
	switch r {
	case ReadLookups:
		return "lookups"
	case ReadScan:
		return "scan"
	}
	return "auto"
}

// FetchStats says how a fetch read: for logs and the benchmark.
type FetchStats struct {
	Read       Read
	Inputs     int64   // input rows (the part's pairs)
	Statements int     // statements run
	Returned   int64   // rows the database returned
	Estimated  float64 // Scan's rows in the range, estimated (0: not asked)
	Values     int     // distinct values Scan was given
}

// scanDensity: ReadAuto scans when the input rows are at least this share
// of the rows ScanRows' EXPLAIN expects in the range (InnoDB's estimate of
// a range this wide comes out about twice the rows it holds). Measured
// part by part with local/cmd/stage2bench (README, Benchmark), both reads
// on the covering idx_user_currency: at 1M withdrawals (vs_payment in the
// buffer pool) parts at 0.086 scanned in 0.10–0.14 s against 0.20–0.30 s
// of lookups, a part at 0.022 in 0.08–0.12 s against 0.07–0.10 s; at 10M
// (not in the pool) parts at 0.08 in 0.29–1.6 s against 0.71–1.8 s, 12
// parts 8.3 s against 11.2 s, and parts at 0.017 tied (0.30–0.58 s and
// 0.34–0.68 s). So the scan wins from about 0.02 on; 0.05 keeps to the
// lookups where they tie, and a one-part small report (one batch) is never
// estimated.
const scanDensity = 1.0 / 20

// maxScanValues bounds the distinct values a scan joins to; more reads by
// lookups.
const maxScanValues = 64

// FetchRead is FetchLimit that reads src's Input as how says (for a
// source without Input, how is ignored) and says how it read.
func FetchRead(ctx context.Context, db *sql.DB, src Source, p Params, b Bounds, in dataset.Store, out *dataset.Writer, maxRows int64, how Read) (FetchStats, error) {
	sink := &rowSink{out: out, max: maxRows}
	var st FetchStats
	if src.Input == "" {
		q, err := src.Build(p, b, nil)
		if err != nil {
			return st, err
		}
		st.Statements = 1
		err = runQuery(ctx, db, src, q, sink)
		st.Returned = sink.rows
		return st, err
	}
	r, err := dataset.Open(ctx, in, src.Input, src.InputColumns)
	if err != nil {
		return st, fmt.Errorf("open input %s: %w", src.Input, err)
	}
	st.Inputs = r.Rows()
	if src.Scan == nil || st.Inputs == 0 {
		how = ReadLookups
	}
	if how == ReadAuto {
		how = ReadLookups
		// One statement's worth of input is never worth an estimate.
		if st.Inputs > int64(src.BatchSize) {
			if st.Estimated, err = estimateRows(ctx, db, src.ScanRows(b)); err != nil {
				return st, fmt.Errorf("estimate %s: %w", src.Name(), err)
			}
			if float64(st.Inputs) >= scanDensity*st.Estimated {
				how = ReadScan
			}
		}
	}
	if how == ReadScan {
		values, err := distinctValues(ctx, in, src)
		switch {
		case err != nil:
			return st, err
		case len(values) <= maxScanValues:
			st.Read, st.Values = ReadScan, len(values)
			err := scanMerge(ctx, db, src, p, b, in, values, sink, &st)
			return st, err
		}
	}
	st.Read = ReadLookups
	err = lookups(ctx, db, src, p, b, r, sink, &st)
	return st, err
}

// lookups feeds the input to Build in batches.
func lookups(ctx context.Context, db *sql.DB, src Source, p Params, b Bounds, r *dataset.Reader, sink *rowSink, st *FetchStats) error {
	batch := make([][]string, 0, src.BatchSize)
	returned := &countSink{next: sink}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		q, err := src.Build(p, b, batch)
		if err != nil {
			return err
		}
		batch = batch[:0]
		st.Statements++
		err = runQuery(ctx, db, src, q, returned)
		st.Returned = returned.n
		return err
	}
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return flush()
		}
		if err != nil {
			return err
		}
		batch = append(batch, append([]string(nil), row...))
		if len(batch) == src.BatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// distinctValues reads the input once for the distinct values of its
// second column, up to one more than maxScanValues.
func distinctValues(ctx context.Context, in dataset.Store, src Source) ([]string, error) {
	r, err := dataset.Open(ctx, in, src.Input, src.InputColumns)
	if err != nil {
		return nil, fmt.Errorf("open input %s: %w", src.Input, err)
	}
	var values []string
	for len(values) <= maxScanValues {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !slices.Contains(values, row[1]) {
			values = append(values, row[1])
		}
	}
	return values, nil
}

// scanMerge runs Scan over the part's range and merges its rows, key by
// key, with a second read of the input: each input row gets the scan's
// row for its key and value, or Missing.
func scanMerge(ctx context.Context, db *sql.DB, src Source, p Params, b Bounds, in dataset.Store, values []string, sink *rowSink, st *FetchStats) error {
	q, err := src.Scan(p, b, values)
	if err != nil {
		return err
	}
	r, err := dataset.Open(ctx, in, src.Input, src.InputColumns)
	if err != nil {
		return fmt.Errorf("open input %s: %w", src.Input, err)
	}
	m := &merger{src: src, in: r, out: sink, group: map[string][]string{}}
	st.Statements = 1
	err = runQuery(ctx, db, src, q, m)
	st.Returned = m.returned
	if err != nil {
		return err
	}
	return m.drain(false, 0)
}

// merger takes the scan's rows (key order) and writes the input's rows
// with them.
type merger struct {
	src      Source
	in       *dataset.Reader
	out      *rowSink
	next     []string // the input row read but not written yet (pending)
	pending  bool
	eof      bool
	cur      int64 // the key of group
	have     bool
	group    map[string][]string // the scan's rows of key cur, by value
	returned int64
	rec      []string
}

func (m *merger) Write(row []string) error {
	m.returned++
	k, err := strconv.ParseInt(row[0], 10, 64)
	if err != nil {
		return fault.Permanent(failreason.NotInteger.Errorf(m.src.Name(), m.src.Key, row[0]))
	}
	if !m.have || k != m.cur {
		if err := m.drain(true, k); err != nil {
			return err
		}
		m.cur, m.have = k, true
		clear(m.group)
	}
	m.group[row[1]] = slices.Clone(row[2:])
	return nil
}

// drain writes the input rows with keys below limit (all of them without
// bounded), each with the scan's row of its key and value or Missing.
func (m *merger) drain(bounded bool, limit int64) error {
	for {
		if !m.pending && !m.eof {
			row, err := m.in.Next()
			switch {
			case errors.Is(err, io.EOF):
				m.eof = true
			case err != nil:
				return err
			default:
				m.next, m.pending = append(m.next[:0], row...), true
			}
		}
		if m.eof {
			return nil
		}
		k, err := strconv.ParseInt(m.next[0], 10, 64)
		if err != nil {
			return fault.Permanent(failreason.BadInput.Errorf(m.src.Input, m.next[0]))
		}
		if bounded && k >= limit {
			return nil
		}
		rest := m.src.Missing
		if m.have && k == m.cur {
			if got, ok := m.group[m.next[1]]; ok {
				rest = got
			}
		}
		m.rec = append(append(m.rec[:0], m.next...), rest...)
		if err := m.out.Write(m.rec); err != nil {
			return err
		}
		m.pending = false
	}
}

// appendTime appends t (UTC) as TimeLayout does, without time.Format's
// layout parsing: this runs once per DATETIME field of every row a listener
// reads. Years outside 0-9999 (not a DATETIME) go through AppendFormat.
func appendTime(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-')
	b = append(b, byte('0'+month/10), byte('0'+month%10), '-', byte('0'+day/10), byte('0'+day%10), 'T')
	b = append(b, byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':')
	return append(b, byte('0'+sec/10), byte('0'+sec%10), 'Z')
}

// estimateRows is the rows EXPLAIN expects q to read.
func estimateRows(ctx context.Context, db *sql.DB, q Query) (float64, error) {
	return explainRows(db.QueryContext(ctx, "EXPLAIN "+q.SQL, q.Args...))
}

// rowWriter takes a query's rows one at a time (rec is reused).
type rowWriter interface{ Write(rec []string) error }

// countSink counts the rows passed on to next.
type countSink struct {
	next rowWriter
	n    int64
}

func (c *countSink) Write(rec []string) error {
	c.n++
	return c.next.Write(rec)
}

// rowSink counts the rows written to out across every query of a fetch.
type rowSink struct {
	out  *dataset.Writer
	rows int64
	max  int64
}

func (s *rowSink) Write(rec []string) error {
	if s.max > 0 && s.rows >= s.max {
		return RowLimitError(s.max)
	}
	if err := s.out.Write(rec); err != nil {
		return err
	}
	s.rows++
	return nil
}

// writeJoined is Write of a row whose fields lie end to end in fields.
func (s *rowSink) writeJoined(fields []byte, ends []int) error {
	if s.max > 0 && s.rows >= s.max {
		return RowLimitError(s.max)
	}
	if err := s.out.WriteJoined(fields, ends); err != nil {
		return err
	}
	s.rows++
	return nil
}

// runQuery runs q and passes its rows to out. It reads through the
// driver's own rows rather than database/sql's Scan: Scan converts each
// value again (by reflection for an int64 into an int64) and was a fifth of
// a listener's CPU; each value is now used as the driver hands it over,
// converted as Scan would have (appendValue). A connection found broken
// before any row was read is replaced once, as database/sql would.
func runQuery(ctx context.Context, db *sql.DB, src Source, q Query, out rowWriter) error {
	for attempt := 0; ; attempt++ {
		read := false
		err := withConn(ctx, db, func(c any) error { return queryConn(ctx, c, src, q, out, &read) })
		switch {
		case attempt == 0 && !read && errors.Is(err, driver.ErrBadConn):
			continue
		case !read && q.Unhinted != "" && noSuchIndex(err):
			q.SQL, q.Unhinted = q.Unhinted, ""
			continue
		}
		return err
	}
}

// noSuchIndex says err is MariaDB's "Key … doesn't exist in table" (an
// index hint naming an index the table, or view, does not have).
func noSuchIndex(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1176
}

// withConn runs f on one of db's driver connections.
func withConn(ctx context.Context, db *sql.DB, f func(driverConn any) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(f)
}

// queryConn is runQuery on one driver connection; read says whether any
// row (or the end) was read.
func queryConn(ctx context.Context, c any, src Source, q Query, out rowWriter, read *bool) error {
	args, err := namedArgs(c, q.Args)
	if err != nil {
		return fmt.Errorf("query %s: %w", src.Name(), err)
	}
	rows, closeStmt, err := driverQuery(ctx, c, q.SQL, args)
	if err != nil {
		return fmt.Errorf("query %s: %w", src.Name(), err)
	}
	defer closeStmt()
	defer rows.Close()
	if n := len(rows.Columns()); n != len(src.Columns) {
		return fault.Permanent(fmt.Errorf("query %s: %d columns, want %d", src.Name(), n, len(src.Columns)))
	}
	// Each row's fields are laid end to end in buf. The dataset takes them
	// so; any other writer gets them as one string, sliced: one allocation
	// per row, not one per field.
	sink, direct := out.(*rowSink)
	dest := make([]driver.Value, len(src.Columns))
	rec := make([]string, len(src.Columns))
	ends := make([]int, len(src.Columns))
	var buf []byte
	for {
		err := rows.Next(dest)
		*read = true
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", src.Name(), err)
		}
		buf = buf[:0]
		for i, c := range src.Columns {
			if buf, err = appendValue(buf, src, c, dest[i]); err != nil {
				return err
			}
			ends[i] = len(buf)
		}
		if direct {
			if err := sink.writeJoined(buf, ends); err != nil {
				return err
			}
			continue
		}
		whole, start := string(buf), 0
		for i, end := range ends {
			rec[i], start = whole[start:end], end
		}
		if err := out.Write(rec); err != nil {
			return err
		}
	}
}

// namedArgs converts args as database/sql would for the connection.
func namedArgs(c any, args []any) ([]driver.NamedValue, error) {
	checker, _ := c.(driver.NamedValueChecker)
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
		err := driver.ErrSkip
		if checker != nil {
			err = checker.CheckNamedValue(&named[i])
		}
		if errors.Is(err, driver.ErrSkip) {
			named[i].Value, err = driver.DefaultParameterConverter.ConvertValue(a)
		}
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
	}
	return named, nil
}

// driverQuery runs query on the driver connection c: directly, or (the
// MySQL driver's way with arguments) as a prepared statement, closed by
// closeStmt once the rows are.
func driverQuery(ctx context.Context, c any, query string, args []driver.NamedValue) (rows driver.Rows, closeStmt func(), err error) {
	closeStmt = func() {}
	if qc, ok := c.(driver.QueryerContext); ok {
		rows, err = qc.QueryContext(ctx, query, args)
		if !errors.Is(err, driver.ErrSkip) {
			return rows, closeStmt, err
		}
	}
	pc, ok := c.(driver.ConnPrepareContext)
	if !ok {
		return nil, closeStmt, fmt.Errorf("driver connection %T cannot prepare with a context", c)
	}
	stmt, err := pc.PrepareContext(ctx, query)
	if err != nil {
		return nil, closeStmt, err
	}
	sq, ok := stmt.(driver.StmtQueryContext)
	if !ok {
		stmt.Close()
		return nil, closeStmt, fmt.Errorf("driver statement %T cannot query with a context", stmt)
	}
	if rows, err = sq.QueryContext(ctx, args); err != nil {
		stmt.Close()
		return nil, closeStmt, err
	}
	return rows, func() { stmt.Close() }, nil
}

// appendValue appends the driver's value v of column c as the dataset
// holds it, converted as database/sql's Scan converted it before:
//   - Int: an int64 as is, any other value (bytes, a float, NULL) only if
//     its text parses as a 64-bit integer, as Scan into an int64 did;
//     otherwise the fetch fails for good, naming the value;
//   - Time: a time.Time (parseTime) in UTC as TimeLayout; anything else
//     (NULL, text: a column of another type) fails the fetch for good,
//     where Scan's error was retried to the dead-letter queue;
//   - Text: the value's bytes as Scan into sql.RawBytes gave them (NULL
//     is empty, numbers in Go's shortest form, a time as RFC 3339).
func appendValue(b []byte, src Source, c Column, v driver.Value) ([]byte, error) {
	switch c.Kind {
	case Int:
		if n, ok := v.(int64); ok {
			return strconv.AppendInt(b, n, 10), nil
		}
		text := string(appendText(nil, v))
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return b, fault.Permanent(failreason.NotInteger.Errorf(src.Name(), c.Name, text))
		}
		return strconv.AppendInt(b, n, 10), nil
	case Time:
		t, ok := v.(time.Time)
		if !ok {
			return b, fault.Permanent(failreason.NotTime.Errorf(src.Name(), c.Name, appendText(nil, v)))
		}
		return appendTime(b, t.UTC()), nil
	}
	return appendText(b, v), nil
}

// appendText appends v as database/sql's Scan into sql.RawBytes does.
func appendText(b []byte, v driver.Value) []byte {
	switch v := v.(type) {
	case []byte:
		return append(b, v...)
	case string:
		return append(b, v...)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case float32:
		return strconv.AppendFloat(b, float64(v), 'g', -1, 32)
	case bool:
		return strconv.AppendBool(b, v)
	case time.Time:
		return v.AppendFormat(b, time.RFC3339Nano)
	case nil:
		return b
	}
	return fmt.Append(b, v)
}
