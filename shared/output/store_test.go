package output_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/shared/output"
)

func newStore(t *testing.T, endpoint string) *output.Store {
	t.Helper()
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(endpoint+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return output.NewStore(c, "reports")
}

func TestWrite(t *testing.T) {
	t.Parallel()
	srv, err := emulators.StartGCS("127.0.0.1", 0, "reports")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	s := newStore(t, srv.URL())
	ctx := context.Background()
	name := output.ObjectName(42, "withdraw_by_tag")
	if name != "reports/42/withdraw_by_tag.csv" || output.Path("reports", name) != "gs://reports/reports/42/withdraw_by_tag.csv" {
		t.Errorf("ObjectName/Path = %q, %q", name, output.Path("reports", name))
	}
	for _, body := range []string{"a,b\n1,2\n", "a,b\n"} { // the second overwrites
		if err := s.Write(ctx, name, func(w io.Writer) error { _, err := io.WriteString(w, body); return err }); err != nil {
			t.Fatal(err)
		}
		obj, err := srv.GetObject("reports", name)
		if err != nil {
			t.Fatal(err)
		}
		if string(obj.Content) != body || obj.ContentType != "text/csv" {
			t.Errorf("object = %q (%s), want %q (text/csv)", obj.Content, obj.ContentType, body)
		}
	}

	// A failing writer leaves no object behind.
	boom := errors.New("join failed")
	err = s.Write(ctx, "reports/43/x.csv", func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Write = %v, want the writer's error", err)
	}
	if _, err := srv.GetObject("reports", "reports/43/x.csv"); err == nil {
		t.Error("a failed write left an object")
	}
}

// A Cloud Storage that keeps failing fails the upload after exactly
// MaxAttempts requests instead of retrying until the request's deadline:
// Pub/Sub's backoff, not a spinning client, retries it.
func TestWriteGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "backend unavailable", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s := newStore(t, srv.URL)
	err := s.Write(context.Background(), "reports/1/x.csv", func(w io.Writer) error { _, err := io.WriteString(w, "a\n"); return err })
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Write = %v, want the server's 503", err)
	}
	if got := requests.Load(); got != output.MaxAttempts {
		t.Errorf("%d upload requests, want exactly MaxAttempts = %d", got, output.MaxAttempts)
	}
}
