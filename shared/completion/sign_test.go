package completion

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/local/signing"
	"github.com/fanoutexport/fanoutexport/shared/config"
)

// A signed link verifies against the key it was signed with, lasts exactly
// the TTL, names the account, and fetches the object from the emulator.
func TestSignerURL(t *testing.T) {
	t.Parallel()
	srv, err := emulators.StartGCS("127.0.0.1", 0, "reports")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	const csv = "withdraw_id,amount\n1,-12.50\n"
	srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "reports", Name: "reports/5/withdraw_by_tag.csv"}, Content: []byte(csv)})
	client, err := storage.NewClient(t.Context(), option.WithEndpoint(srv.URL()+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	key, keyFile, err := signing.NewSigningKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	for _, ttl := range []time.Duration{time.Second, 90 * time.Minute, config.MaxSignedURLTTL} {
		t.Run(ttl.String(), func(t *testing.T) {
			t.Parallel()
			s, err := NewSigner(client, config.Completion{SignedURLTTL: ttl, SignedURLKeyFile: keyFile, SignedURLAccessID: signing.SigningAccessID})
			if err != nil {
				t.Fatal(err)
			}
			s.insecure = true // the emulator is plain HTTP; NewSigner reads that from STORAGE_EMULATOR_HOST
			before := time.Now().UTC().Truncate(time.Second)
			link, err := s.URL("gs://reports/reports/5/withdraw_by_tag.csv")
			if err != nil {
				t.Fatal(err)
			}
			got, err := signing.VerifySignedURL(link, &key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if got.Expires != ttl {
				t.Errorf("X-Goog-Expires %s, want the TTL %s", got.Expires, ttl)
			}
			if got.AccessID != signing.SigningAccessID {
				t.Errorf("signed as %q, want %q", got.AccessID, signing.SigningAccessID)
			}
			if got.Date.Before(before) || got.Date.After(time.Now()) {
				t.Errorf("X-Goog-Date %s, not the time of signing (after %s)", got.Date, before)
			}
			if !strings.HasPrefix(link, srv.URL()+"/reports/reports/5/withdraw_by_tag.csv?") {
				t.Errorf("link %s does not point at the emulator's object", link)
			}
			resp, err := http.Get(link)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != csv {
				t.Errorf("GET link: %s %q, want 200 %q", resp.Status, body, csv)
			}
		})
	}
}

// A link signed by another key, or tampered with, does not verify: the
// check above can fail.
func TestVerifySignedURLRejects(t *testing.T) {
	t.Parallel()
	client, err := storage.NewClient(t.Context(), option.WithEndpoint("http://127.0.0.1:1/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	key, keyFile, err := signing.NewSigningKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(client, config.Completion{SignedURLTTL: time.Hour, SignedURLKeyFile: keyFile, SignedURLAccessID: signing.SigningAccessID})
	if err != nil {
		t.Fatal(err)
	}
	link, err := s.URL("gs://reports/reports/5/a.csv")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := signing.NewSigningKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signing.VerifySignedURL(link, &other.PublicKey); err == nil {
		t.Error("a link verified against a key that did not sign it")
	}
	if _, err := signing.VerifySignedURL(link, &key.PublicKey); err != nil {
		t.Errorf("the untouched link does not verify: %v", err)
	}
	if _, err := signing.VerifySignedURL(strings.Replace(link, "a.csv", "b.csv", 1), &key.PublicKey); err == nil {
		t.Error("a link to another object verified")
	}
	if _, err := NewSigner(client, config.Completion{}); err != nil {
		t.Errorf("no TTL: %v", err)
	}
	if s, _ := NewSigner(client, config.Completion{}); s != nil {
		t.Error("no TTL made a signer")
	}
	if _, err := s.URL("reports/5/a.csv"); err == nil {
		t.Error("a path without gs:// was signed")
	}
}
