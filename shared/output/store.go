package output

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
)

// ObjectName is where record id's CSV lives in the bucket.
func ObjectName(id int64, reportType string) string {
	return "reports/" + strconv.FormatInt(id, 10) + "/" + reportType + ".csv"
}

// Path is the gs:// URL stored in file_path.
func Path(bucket, object string) string { return "gs://" + bucket + "/" + object }

// ChunkSize bounds the upload buffer: the storage client holds one chunk in
// memory per writer, so this, not the report size, bounds upload memory.
const ChunkSize = 8 << 20

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

// Write streams object through write and commits it only if write
// succeeds; on error the partial upload is abandoned and no object appears.
func (s *Store) Write(ctx context.Context, object string, write func(io.Writer) error) error {
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
		return fmt.Errorf("storage upload gs://%s/%s: %w", s.bucket, object, err)
	}
	return nil
}
