// Package record is the repository of FileDownloadRecordEntity rows in
// plt_report.file_download_record. Status only moves forward: every update
// is guarded by the statuses it may leave, so a late duplicate message
// never changes a SUCCESS or FAILED record.
package record

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/fault"
)

// Status of a record (fixed values).
type Status int8

// The record statuses.
const (
	Pending    Status = 0
	Processing Status = 1
	Success    Status = 2
	Failed     Status = 3
)

func (s Status) String() string {
	switch s {
	case Pending:
		return "PENDING"
	case Processing:
		return "PROCESSING"
	case Success:
		return "SUCCESS"
	case Failed:
		return "FAILED"
	}
	return fmt.Sprintf("Status(%d)", int8(s))
}

// Known reports whether s is one of the four statuses.
func (s Status) Known() bool { return s >= Pending && s <= Failed }

// Final reports whether s can no longer change.
func (s Status) Final() bool { return s == Success || s == Failed }

// Table is the record table's name in its database.
const Table = "file_download_record"

// DDL creates the record table (in the database named by RECORD_DSN).
const DDL = `CREATE TABLE IF NOT EXISTS file_download_record (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  report_type VARCHAR(64) NOT NULL,
  params JSON NOT NULL,
  status TINYINT NOT NULL DEFAULT 0,
  file_path VARCHAR(1024) NULL,
  row_count BIGINT NULL,
  fail_reason TEXT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_status_updated (status, updated_at)
)`

// Record is one export request.
type Record struct {
	ID         int64
	ReportType string
	Params     []byte
	Status     Status
	FilePath   string
	RowCount   int64
	FailReason string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// ErrNotFound means no record has the ID.
var ErrNotFound = errors.New("record not found")

// Repo reads and updates records.
type Repo struct{ db *sql.DB }

// NewRepo wraps db.
func NewRepo(db *sql.DB) *Repo { return &Repo{db: db} }

// Get returns record id.
func (r *Repo) Get(ctx context.Context, id int64) (Record, error) {
	var rec Record
	var path, reason sql.NullString
	var rows sql.NullInt64
	err := r.db.QueryRowContext(ctx, `SELECT id, report_type, params, status, file_path, row_count, fail_reason, created_at, updated_at
FROM file_download_record WHERE id = ?`, id).Scan(&rec.ID, &rec.ReportType, &rec.Params, &rec.Status, &path, &rows, &reason, &rec.CreatedAt, &rec.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	if err != nil {
		return Record{}, fmt.Errorf("select record %d: %w", id, err)
	}
	rec.FilePath, rec.RowCount, rec.FailReason = path.String, rows.Int64, reason.String
	return rec, nil
}

// Insert adds a PENDING record, as the upstream service does.
func (r *Repo) Insert(ctx context.Context, reportType string, params []byte) (int64, error) {
	res, err := r.db.ExecContext(ctx, `INSERT INTO file_download_record (report_type, params) VALUES (?, ?)`, reportType, params)
	if err != nil {
		return 0, fmt.Errorf("insert record: %w", err)
	}
	return res.LastInsertId()
}

// MarkProcessing moves a PENDING record to PROCESSING. It reports false if
// the record was not PENDING (MySQL counts only changed rows).
func (r *Repo) MarkProcessing(ctx context.Context, id int64) (bool, error) {
	return r.update(ctx, id, `UPDATE file_download_record SET status = 1 WHERE id = ? AND status = 0`)
}

// MarkSuccess records the CSV of a PROCESSING record. It reports false if
// the record was not PROCESSING (already final), and then changes nothing.
func (r *Repo) MarkSuccess(ctx context.Context, id int64, path string, rows int64) (bool, error) {
	return r.update(ctx, id, `UPDATE file_download_record SET status = 2, file_path = ?, row_count = ?, fail_reason = NULL
WHERE id = ? AND status = 1`, path, rows, id)
}

// MaxReasonBytes bounds fail_reason so a huge error cannot bloat the row.
const MaxReasonBytes = 4000

// MarkFailed ends a PENDING or PROCESSING record with a reason. It reports
// false if the record was already final, and then changes nothing.
func (r *Repo) MarkFailed(ctx context.Context, id int64, reason string) (bool, error) {
	// The column is utf8mb4 and strict mode refuses invalid UTF-8 (error
	// 1366), which would leave the record unfinishable: repair it first.
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	reason = fault.Clip(reason, MaxReasonBytes)
	return r.update(ctx, id, `UPDATE file_download_record SET status = 3, fail_reason = ? WHERE id = ? AND status IN (0, 1)`, reason, id)
}

func (r *Repo) update(ctx context.Context, id int64, q string, args ...any) (bool, error) {
	if len(args) == 0 {
		args = []any{id}
	}
	res, err := r.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("update record %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update record %d: %w", id, err)
	}
	return n == 1, nil
}

// Stale lists up to limit records in status that have not been updated
// for olderThan, by the database's clock, oldest first. The sweeper reads
// it; the index on (status, updated_at) serves it.
func (r *Repo) Stale(ctx context.Context, status Status, olderThan time.Duration, limit int) ([]Record, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id, report_type, status, created_at, updated_at
FROM file_download_record
WHERE status = ? AND updated_at < CURRENT_TIMESTAMP(3) - INTERVAL ? MICROSECOND
ORDER BY updated_at, id LIMIT ?`, status, olderThan.Microseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("select stale %v records: %w", status, err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var rec Record
		if err := rows.Scan(&rec.ID, &rec.ReportType, &rec.Status, &rec.CreatedAt, &rec.UpdatedAt); err != nil {
			return nil, fmt.Errorf("select stale %v records: %w", status, err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select stale %v records: %w", status, err)
	}
	return out, nil
}

// TouchStale bumps updated_at of record id if it is still in status and
// still not updated for olderThan. It reports whether it did: of several
// callers racing on one record, one wins per interval (the row lock
// serialises them and the loser sees the new updated_at).
func (r *Repo) TouchStale(ctx context.Context, id int64, status Status, olderThan time.Duration) (bool, error) {
	return r.update(ctx, id, `UPDATE file_download_record SET updated_at = CURRENT_TIMESTAMP(3)
WHERE id = ? AND status = ? AND updated_at < CURRENT_TIMESTAMP(3) - INTERVAL ? MICROSECOND`, id, status, olderThan.Microseconds())
}

// Touch bumps updated_at of record id if it is still in status, and
// reports whether it did. DrainTriggers touches a PROCESSING record each time it
// schedules another attempt to dispatch it, so the sweeper, which judges a
// record by how long it has been quiet, sees a report being retried as
// alive.
func (r *Repo) Touch(ctx context.Context, id int64, status Status) (bool, error) {
	return r.update(ctx, id, `UPDATE file_download_record SET updated_at = CURRENT_TIMESTAMP(3) WHERE id = ? AND status = ?`, id, status)
}

// FailStale ends record id with reason if it is still in status (PENDING
// or PROCESSING) and still not updated for olderThan. It reports false,
// changing nothing, if the record moved on meanwhile.
func (r *Repo) FailStale(ctx context.Context, id int64, status Status, olderThan time.Duration, reason string) (bool, error) {
	if status.Final() || !status.Known() {
		return false, fmt.Errorf("fail stale record %d: status %v is not PENDING or PROCESSING", id, status)
	}
	reason = fault.Clip(strings.ToValidUTF8(reason, "\uFFFD"), MaxReasonBytes)
	return r.update(ctx, id, `UPDATE file_download_record SET status = 3, fail_reason = ?
WHERE id = ? AND status = ? AND updated_at < CURRENT_TIMESTAMP(3) - INTERVAL ? MICROSECOND`, reason, id, status, olderThan.Microseconds())
}

// Admission is what Admit did.
type Admission int

// Admit's answers.
const (
	Admitted   Admission = iota // moved PENDING → PROCESSING
	NotPending                  // the record was no longer PENDING; nothing changed
	Full                        // max records PROCESSING already; nothing changed
)

func (a Admission) String() string {
	return [...]string{"admitted", "not pending", "full"}[a]
}

// admissionLock names the MariaDB/MySQL user lock that serialises
// admissions. User locks are server-wide, so the name carries the record
// database's (hashed: names over 64 characters are refused), and two
// deployments, or two tests, on one server do not share a limit.
const admissionLock = `CONCAT('fanout-admit:', MD5(DATABASE()))`

// admitLockWait bounds the wait for the admission lock; each holder keeps
// it for two short statements.
const admitLockWait = 10 // seconds

// Admit moves PENDING record id to PROCESSING if fewer than max records are
// PROCESSING, atomically across concurrent callers and instances.
//
// Why a user lock: a single conditional statement such as
// UPDATE … SET status = 1 WHERE id = ? AND status = 0 AND
// (SELECT COUNT(*) … WHERE status = 1) < ? is not atomic under InnoDB's
// REPEATABLE READ: the subquery reads a snapshot without locking, so two
// admissions that run at once each count N-1 and both go. Making the read
// locking (FOR UPDATE / LOCK IN SHARE MODE) next-key-locks the status
// index range and deadlocks with the aggregator's and DLQ's updates. So
// every move into PROCESSING holds GET_LOCK around a count and the update:
// both are autocommit statements, each reading the latest committed rows,
// and no other admission can commit between them. Moves out of PROCESSING
// (SUCCESS, FAILED) take no lock: they only lower the count, so at worst
// a concurrent admission sees one slot fewer and the trigger waits one
// more round. The lock is the connection's: if the process dies the
// server releases it. This needs no table of ours and no Redis counter to
// reconcile after a crash; it holds as long as Admit is the only way into
// PROCESSING (MarkProcessing is for callers without a limit).
func (r *Repo) Admit(ctx context.Context, id int64, max int) (Admission, error) {
	if max < 1 {
		return 0, fmt.Errorf("admit record %d: limit %d is below 1", id, max)
	}
	// A cheap look first: in a burst most triggers are refused here
	// without queueing for the lock.
	n, err := r.CountProcessing(ctx)
	if err != nil {
		return 0, fmt.Errorf("admit record %d: %w", id, err)
	}
	if n >= int64(max) {
		return Full, nil
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("admit record %d: database connection: %w", id, err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(`+admissionLock+`, ?)`, admitLockWait).Scan(&got); err != nil {
		return 0, fmt.Errorf("admit record %d: GET_LOCK: %w", id, err)
	}
	if got.Int64 != 1 {
		return 0, fmt.Errorf("admit record %d: GET_LOCK: not granted within %ds", id, admitLockWait)
	}
	defer func() {
		// A connection still holding the lock must not go back to the
		// pool: if the release fails, discard the connection, which ends
		// the session and so releases the lock on the server.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `DO RELEASE_LOCK(`+admissionLock+`)`); err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM file_download_record WHERE status = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("admit record %d: count PROCESSING: %w", id, err)
	}
	if n >= int64(max) {
		return Full, nil
	}
	res, err := conn.ExecContext(ctx, `UPDATE file_download_record SET status = 1 WHERE id = ? AND status = 0`, id)
	if err != nil {
		return 0, fmt.Errorf("admit record %d: update: %w", id, err)
	}
	moved, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("admit record %d: update: %w", id, err)
	}
	if moved != 1 {
		return NotPending, nil
	}
	return Admitted, nil
}

// CountProcessing counts the records in PROCESSING (served by the index
// on status).
func (r *Repo) CountProcessing(ctx context.Context) (int64, error) {
	var n int64
	if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM file_download_record WHERE status = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count PROCESSING records: %w", err)
	}
	return n, nil
}

// Query selects records for List.
type Query struct {
	// Status keeps only records in this status; nil keeps all.
	Status *Status
	// Since keeps only records created within this long of the database's
	// clock; 0 keeps all.
	Since time.Duration
	// Limit caps the rows returned (newest first); it must be positive.
	Limit int
}

// List returns records matching q, newest first (by ID, the insertion
// order), with every column. The operator's command line reads it.
func (r *Repo) List(ctx context.Context, q Query) ([]Record, error) {
	where := []string{"1 = 1"}
	var args []any
	if q.Status != nil {
		where = append(where, "status = ?")
		args = append(args, *q.Status)
	}
	if q.Since > 0 {
		where = append(where, "created_at >= CURRENT_TIMESTAMP(3) - INTERVAL ? MICROSECOND")
		args = append(args, q.Since.Microseconds())
	}
	if q.Limit < 1 {
		return nil, fmt.Errorf("list records: limit %d is not positive", q.Limit)
	}
	args = append(args, q.Limit)
	rows, err := r.db.QueryContext(ctx, `SELECT id, report_type, params, status, file_path, row_count, fail_reason, created_at, updated_at
FROM file_download_record WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var rec Record
		var path, reason sql.NullString
		var n sql.NullInt64
		if err := rows.Scan(&rec.ID, &rec.ReportType, &rec.Params, &rec.Status, &path, &n, &reason, &rec.CreatedAt, &rec.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list records: %w", err)
		}
		rec.FilePath, rec.RowCount, rec.FailReason = path.String, n.Int64, reason.String
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	return out, nil
}
