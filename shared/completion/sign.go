package completion

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"

	"github.com/fanoutexport/fanoutexport/shared/config"
)

// Signer makes V4 signed GET URLs for the CSVs.
//
// In production it sets neither GoogleAccessID nor a key:
// BucketHandle.SignedURL then takes the account from the metadata server
// (the function's own service account) and signs through the IAM
// Credentials API's signBlob, with no key file anywhere (storage v1.70.0,
// bucket.go: detectDefaultGoogleAccessID, defaultSignBytesFunc). The
// account needs iam.serviceAccounts.signBlob on itself.
//
// Locally it signs with the stack's own RSA key (SIGNED_URL_KEY_FILE) as
// SIGNED_URL_ACCESS_ID; the host is the storage client's, so with
// STORAGE_EMULATOR_HOST the link points at the emulator (over http).
type Signer struct {
	client   *storage.Client
	ttl      time.Duration
	accessID string
	key      []byte
	insecure bool
	now      func() time.Time
}

// NewSigner returns the signer cfg asks for, or nil when SIGNED_URL_TTL is 0.
func NewSigner(client *storage.Client, cfg config.Completion) (*Signer, error) {
	if cfg.SignedURLTTL <= 0 {
		return nil, nil
	}
	if client == nil {
		return nil, fmt.Errorf("SIGNED_URL_TTL is set but the function has no Cloud Storage client")
	}
	s := &Signer{client: client, ttl: cfg.SignedURLTTL, accessID: cfg.SignedURLAccessID, now: time.Now}
	if cfg.SignedURLKeyFile != "" {
		key, err := os.ReadFile(cfg.SignedURLKeyFile)
		if err != nil {
			return nil, fmt.Errorf("SIGNED_URL_KEY_FILE: %w", err)
		}
		s.key = key
	}
	// The emulator speaks plain HTTP; Cloud Storage only HTTPS.
	if h := os.Getenv("STORAGE_EMULATOR_HOST"); h != "" && !strings.HasPrefix(h, "https://") {
		s.insecure = true
	}
	return s, nil
}

// TTL is the links' lifetime.
func (s *Signer) TTL() time.Duration { return s.ttl }

// URL returns a signed GET link to path (gs://bucket/object) valid for the
// TTL, with X-Goog-Expires exactly the TTL in seconds.
func (s *Signer) URL(path string) (string, error) {
	bucket, object, ok := strings.Cut(strings.TrimPrefix(path, "gs://"), "/")
	if !strings.HasPrefix(path, "gs://") || !ok || bucket == "" || object == "" {
		return "", fmt.Errorf("file path %q is not gs://bucket/object", path)
	}
	want := strconv.FormatInt(int64(s.ttl/time.Second), 10)
	// SignedURL computes X-Goog-Expires as the whole seconds between
	// Expires and its own reading of the clock, which comes later than
	// ours. Expiring at the end of the current second plus the TTL gives
	// exactly the TTL unless its reading falls in the next second; then
	// sign again.
	var link string
	for range 3 {
		now := s.now()
		opts := &storage.SignedURLOptions{
			Scheme:   storage.SigningSchemeV4,
			Method:   http.MethodGet,
			Expires:  now.Truncate(time.Second).Add(s.ttl + time.Second - time.Nanosecond),
			Insecure: s.insecure,
		}
		if s.key != nil {
			opts.GoogleAccessID, opts.PrivateKey = s.accessID, s.key
		}
		var err error
		if link, err = s.client.Bucket(bucket).SignedURL(object, opts); err != nil {
			return "", fmt.Errorf("storage SignedURL %s: %w", path, err)
		}
		u, err := url.Parse(link)
		if err != nil {
			return "", fmt.Errorf("storage SignedURL %s: %w", path, err)
		}
		if u.Query().Get("X-Goog-Expires") == want {
			return link, nil
		}
	}
	return link, nil
}
