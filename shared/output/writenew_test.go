package output_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/shared/output"
)

// A report's CSV, once written, never changes: a second WriteNew of the
// same name (another run of the report, uploading after the first) is
// refused with ErrExists, the object keeping its content and generation;
// CountRows reads the winner's rows back, quoted line breaks included.
func TestWriteNewNeverReplaces(t *testing.T) {
	t.Parallel()
	srv, err := emulators.StartGCS("127.0.0.1", 0, "reports")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	s := newStore(t, srv.URL())
	ctx := context.Background()
	name := output.ObjectName(44, "withdraw_by_tag")
	first := "\uFEFFuser,note\n1,\"two\nlines\"\n2,x\n"
	put := func(body string) error {
		return s.WriteNew(ctx, name, func(w io.Writer) error { _, err := io.WriteString(w, body); return err })
	}
	if err := put(first); err != nil {
		t.Fatalf("first WriteNew: %v", err)
	}
	obj, err := srv.GetObject("reports", name)
	if err != nil {
		t.Fatal(err)
	}
	gen := obj.Generation
	if err := put("user,note\n1,a\n2,b\n3,c\n"); !errors.Is(err, output.ErrExists) {
		t.Fatalf("second WriteNew = %v, want ErrExists", err)
	}
	obj, err = srv.GetObject("reports", name)
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Content) != first || obj.Generation != gen {
		t.Errorf("object after a refused WriteNew: %q generation %d, want %q generation %d", obj.Content, obj.Generation, first, gen)
	}
	rows, err := s.CountRows(ctx, name)
	if err != nil || rows != 2 {
		t.Errorf("CountRows = %d, %v; want 2", rows, err)
	}
	// A writer failing on a name already taken is still the writer's error.
	boom := errors.New("join failed")
	if err := s.WriteNew(ctx, name, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("WriteNew with a failing writer = %v, want its error", err)
	}
}
