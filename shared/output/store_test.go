package output

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/local/emulators"
)

func newStore(t *testing.T, endpoint string) *Store {
	t.Helper()
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(endpoint+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return NewStore(c, "reports")
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
	name := ObjectName(42, "withdraw_by_tag")
	if name != "reports/42/withdraw_by_tag.csv" || Path("reports", name) != "gs://reports/reports/42/withdraw_by_tag.csv" {
		t.Errorf("ObjectName/Path = %q, %q", name, Path("reports", name))
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

// An unreachable Cloud Storage fails the upload after MaxAttempts instead
// of retrying until the request's deadline.
func TestWriteUnreachable(t *testing.T) {
	t.Parallel()
	s := newStore(t, "http://127.0.0.1:1")
	err := s.Write(context.Background(), "reports/1/x.csv", func(w io.Writer) error { _, err := io.WriteString(w, "a\n"); return err })
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Write = %v, want a connection refused error", err)
	}
}
