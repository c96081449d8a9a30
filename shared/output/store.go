package output

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
)

// ObjectName is where record id's CSV lives in the bucket.
func ObjectName(id int64, reportType string) string {
	return "reports/" + strconv.FormatInt(id, 10) + "/" + reportType + ".csv"
}

// Path is the gs:// URL stored in file_path.
func Path(bucket, object string) string { return "gs://" + bucket + "/" + object }

// ChunkSize bounds the upload buffer: the storage client holds one chunk in
// memory per writer, so this, not the report size, bounds upload memory.
// 2 MiB, not 8: with one push per process (an instance's request
// concurrency), Aggregate's peak RSS on 1M withdrawals went from 75–76 MiB
// to 60–61 (RssAnon 40 to 22 MiB) at the same CPU, for one chunk request
// per 2 MiB of a segment (4 a 250,000-row part) instead of per 8 (README,
// Benchmark).
const ChunkSize = 2 << 20

// MaxAttempts and ChunkRetryDeadline bound the client's retries of one
// chunk upload (its default deadline is 32 s).
const (
	MaxAttempts        = 4
	ChunkRetryDeadline = 15 * time.Second
)

// Store writes report CSVs to one Cloud Storage bucket. The object name is
// fixed per record, so a retried or taken-over upload overwrites rather
// than duplicates.
type Store struct {
	client *storage.Client
	bucket string
}

// NewStore returns a Store for bucket.
func NewStore(client *storage.Client, bucket string) *Store {
	return &Store{client: client, bucket: bucket}
}

// Bucket is the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// ErrExists means WriteNew found the object already there: another run
// of the report uploaded it first, and it was left unchanged.
var ErrExists = errors.New("object already exists")

// Write streams object through write and commits it only if write
// succeeds; on error the partial upload is abandoned and no object appears.
// It replaces an existing object.
func (s *Store) Write(ctx context.Context, object string, write func(io.Writer) error) error {
	return s.write(ctx, object, false, write)
}

// WriteNew is Write that commits only if no object of that name exists
// (the DoesNotExist precondition, checked by Cloud Storage when the upload
// completes): a report's CSV, once written, never changes, whatever runs
// of the report race. Losing that race is ErrExists; so is a retried
// upload whose first attempt was committed, which is then the same data.
func (s *Store) WriteNew(ctx context.Context, object string, write func(io.Writer) error) error {
	return s.write(ctx, object, true, write)
}

func (s *Store) write(ctx context.Context, object string, onlyNew bool, write func(io.Writer) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The name is fixed per record, so retrying a whole upload is safe
	// (RetryAlways); bounded attempts let a Cloud Storage outage fail the
	// request, and Pub/Sub's backoff, not a spinning client, retry it.
	// The client ignores WithMaxAttempts for uploads (it only consults the
	// error func), so the error func counts the attempts itself.
	var failures atomic.Int32
	obj := s.client.Bucket(s.bucket).Object(object).Retryer(
		storage.WithPolicy(storage.RetryAlways),
		storage.WithBackoff(gax.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}),
		storage.WithErrorFunc(func(err error) bool {
			return failures.Add(1) < MaxAttempts && storage.ShouldRetry(err)
		}))
	if onlyNew {
		obj = obj.If(storage.Conditions{DoesNotExist: true})
	}
	w := obj.NewWriter(ctx)
	w.ContentType = "text/csv"
	w.ChunkSize = ChunkSize
	w.ChunkRetryDeadline = ChunkRetryDeadline
	if err := write(w); err != nil {
		cancel() // abandons the upload; Close then reports the cancellation
		_ = w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		var gerr *googleapi.Error
		if onlyNew && errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed {
			return fmt.Errorf("storage upload gs://%s/%s: %w", s.bucket, object, ErrExists)
		}
		return fmt.Errorf("storage upload gs://%s/%s: %w", s.bucket, object, err)
	}
	return nil
}

// CountRows reads object back and returns its data rows (CSV records
// after the header): what a run that lost WriteNew's race records as the
// report's row_count, so that the object at file_path always has
// row_count rows. It streams: memory does not grow with the object.
func (s *Store) CountRows(ctx context.Context, object string) (int64, error) {
	records, err := s.countRecords(ctx, object)
	if err != nil {
		return 0, err
	}
	if records == 0 {
		return 0, fmt.Errorf("read back gs://%s/%s: no header", s.bucket, object)
	}
	return records - 1, nil
}

// CountSegmentRows is CountRows for a segment (NewSegmentCSV), which has
// no header: every CSV record is a data row, and an empty segment has none.
func (s *Store) CountSegmentRows(ctx context.Context, object string) (int64, error) {
	return s.countRecords(ctx, object)
}

func (s *Store) countRecords(ctx context.Context, object string) (int64, error) {
	r, err := s.client.Bucket(s.bucket).Object(object).NewReader(ctx)
	if err != nil {
		return 0, fmt.Errorf("storage read gs://%s/%s: %w", s.bucket, object, err)
	}
	defer r.Close()
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var records int64
	for {
		_, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read back gs://%s/%s: %w", s.bucket, object, err)
		}
		records++
	}
	return records, nil
}
