// Package reportstore writes report CSVs to Cloud Storage. The object name
// is fixed per record, so a retried or taken-over upload overwrites
// rather than duplicates.
package reportstore

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"cloud.google.com/go/storage"
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

// Store uploads to one bucket.
type Store struct {
	client *storage.Client
	bucket string
}

// New returns a Store for bucket.
func New(client *storage.Client, bucket string) *Store { return &Store{client: client, bucket: bucket} }

// Bucket is the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Write streams object through write and commits it only if write
// succeeds; on error the partial upload is abandoned and no object appears.
func (s *Store) Write(ctx context.Context, object string, write func(io.Writer) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.client.Bucket(s.bucket).Object(object).NewWriter(ctx)
	w.ContentType = "text/csv"
	w.ChunkSize = ChunkSize
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
