package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/local/signing"
	"github.com/fanoutexport/fanoutexport/shared/config"
)

// Sign makes the link the functions make: V4, signed with the key file as
// the access ID, X-Goog-Expires the TTL, and an expiry read from the link.
// Signing with a key needs no server.
func TestSign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := storage.NewClient(ctx, option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, keyFile, err := signing.NewSigningKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 37 * time.Minute
	c := &client.Client{Storage: st, Completion: config.Completion{SignedURLTTL: ttl, SignedURLKeyFile: keyFile, SignedURLAccessID: signing.SigningAccessID}}
	l, err := c.Sign(ctx, "gs://reports/reports/7/withdraw_by_tag.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, err := signing.VerifySignedURL(l.URL, &key.PublicKey)
	if err != nil {
		t.Fatalf("%s: %v", l.URL, err)
	}
	if got.Expires != ttl || got.AccessID != signing.SigningAccessID || !l.Expires.Equal(got.Date.Add(ttl)) {
		t.Errorf("link %s: expires %s (at %s) as %s; want %s after %s as %s", l.URL, got.Expires, l.Expires, got.AccessID, ttl, got.Date, signing.SigningAccessID)
	}

	tests := []struct {
		name string
		c    *client.Client
		path string
	}{
		{"not a gs path", c, "/reports/a.csv"},
		{"key file missing", &client.Client{Storage: st, Completion: config.Completion{SignedURLTTL: ttl, SignedURLKeyFile: keyFile + ".gone", SignedURLAccessID: "x"}}, "gs://reports/a.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if l, err := tt.c.Sign(ctx, tt.path); err == nil {
				t.Errorf("Sign(%q) = %s, want an error", tt.path, l.URL)
			}
		})
	}
	if _, err := (&client.Client{Storage: st}).Sign(ctx, "gs://reports/a.csv"); !errors.Is(err, client.ErrNoSigning) {
		t.Errorf("Sign without SIGNED_URL_TTL: %v, want ErrNoSigning", err)
	}
}
