package output_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/googleapi"
)

// TestFakeGCSComposeQuirks pins how fake-gcs-server's compose differs
// from Cloud Storage's (fakestorage/object.go composeObject and
// internal/backend ComposeObject, v1.56.1), so that an upgrade that
// changes it is noticed, and what it shares with it that the tests of
// Compose rely on.
func TestFakeGCSComposeQuirks(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	ctx := context.Background()
	bucket := e.store.Bucket()
	put := func(name, content string) {
		e.srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: name}, Content: []byte(content)})
	}
	// One attempt only: the emulator's 500s would otherwise be retried.
	client := func(name string) *storage.ObjectHandle {
		return e.client.Bucket(bucket).Object(name).Retryer(storage.WithPolicy(storage.RetryNever))
	}
	put("a", "A")
	put("b", "B")

	t.Run("ignores DoesNotExist on compose", func(t *testing.T) {
		// Cloud Storage answers 412 and leaves the object. The emulator
		// replaces it (the backend composes with NoConditions): the
		// concurrent-runs test there cannot show the condition holding,
		// which is why Compose also checks for dst before composing,
		// and TestComposeLeavesAnExistingObject relies on that check.
		// If this fails, the emulator enforces the condition: add a test
		// that races the final compose itself.
		put("exists", "first")
		c := client("exists").If(storage.Conditions{DoesNotExist: true}).ComposerFrom(client("a"), client("b"))
		_, err := c.Run(ctx)
		got, gerr := e.srv.GetObject(bucket, "exists")
		if err != nil || gerr != nil || string(got.Content) != "AB" {
			t.Errorf("conditional compose over an existing object: %v, object %q (%v); the emulator used to replace it", err, got.Content, gerr)
		}
	})
	t.Run("a missing source is a 500, not a 404", func(t *testing.T) {
		// Cloud Storage answers 404. The client retries a 500, so a rerun
		// racing a cleanup spends its retries before Compose sees the
		// final object and stops: slower, same outcome.
		_, err := client("x").ComposerFrom(client("a"), client("missing")).Run(ctx)
		var gerr *googleapi.Error
		if !errors.As(err, &gerr) || gerr.Code != http.StatusInternalServerError {
			t.Errorf("compose with a missing source = %v, the emulator used to answer 500", err)
		}
	})
	t.Run("like Cloud Storage: refuses 33 sources, takes 32 in order", func(t *testing.T) {
		var srcs []*storage.ObjectHandle
		want := ""
		for i := range 33 {
			name := fmt.Sprintf("s%02d", i)
			put(name, name)
			srcs = append(srcs, client(name))
			want += name
		}
		_, err := client("y").ComposerFrom(srcs...).Run(ctx)
		var gerr *googleapi.Error
		if !errors.As(err, &gerr) || gerr.Code != http.StatusBadRequest {
			t.Errorf("compose of 33 sources = %v, want 400 as Cloud Storage answers", err)
		}
		if _, err := client("y").ComposerFrom(srcs[:32]...).Run(ctx); err != nil {
			t.Fatalf("compose of 32 sources: %v", err)
		}
		if got, err := e.srv.GetObject(bucket, "y"); err != nil || string(got.Content) != want[:len(want)-3] {
			t.Errorf("composed %q (%v), want the sources in order", got.Content, err)
		}
	})
	t.Run("like Cloud Storage: the composite keeps its content when a source is deleted", func(t *testing.T) {
		if _, err := client("z").ComposerFrom(client("a"), client("b")).Run(ctx); err != nil {
			t.Fatal(err)
		}
		if err := client("b").Delete(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := e.srv.GetObject(bucket, "z"); err != nil || string(got.Content) != "AB" {
			t.Errorf("composite after a source's deletion: %q (%v), want AB", got.Content, err)
		}
	})
}
