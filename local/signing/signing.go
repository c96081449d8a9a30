// Package signing is the local stack's stand-in for the IAM Credentials API:
// an RSA key made at start that signs V4 URLs for the Cloud Storage
// emulator, and a verifier for the tests.
package signing

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SigningAccessID is the account name the local stack signs download URLs
// as; fake-gcs-server checks no signature, tests verify it with the key.
const SigningAccessID = "local-signer@local-project.iam.gserviceaccount.com"

// NewSigningKey makes an RSA key and writes it, PEM (PKCS #8), to
// dir/signing-key.pem, readable by the owner only. The stack hands the file
// to its processes (SIGNED_URL_KEY_FILE): in production the functions sign
// through the IAM Credentials API instead and no key exists.
func NewSigningKey(dir string) (*rsa.PrivateKey, string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, "", fmt.Errorf("rsa.GenerateKey: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("x509.MarshalPKCS8PrivateKey: %w", err)
	}
	path := filepath.Join(dir, "signing-key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, "", err
	}
	return key, path, nil
}

// SignedURL is what VerifySignedURL read from a V4 signed URL.
type SignedURL struct {
	AccessID string
	Date     time.Time
	Expires  time.Duration // X-Goog-Expires
}

// VerifySignedURL checks link's V4 signature (GOOG4-RSA-SHA256 over the
// canonical GET request, host the only signed header) against pub, by
// rebuilding the canonical request from the URL itself, as Cloud Storage
// does. It is written from the V4 specification, not from the client
// library, so a library that signs something else fails it.
// https://cloud.google.com/storage/docs/authentication/canonical-requests
func VerifySignedURL(link string, pub *rsa.PublicKey) (SignedURL, error) {
	u, err := url.Parse(link)
	if err != nil {
		return SignedURL{}, err
	}
	q := u.Query()
	for _, k := range []string{"X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-Date", "X-Goog-Expires", "X-Goog-SignedHeaders", "X-Goog-Signature"} {
		if len(q[k]) != 1 {
			return SignedURL{}, fmt.Errorf("signed URL has %d %s parameters, want 1", len(q[k]), k)
		}
	}
	if a := q.Get("X-Goog-Algorithm"); a != "GOOG4-RSA-SHA256" {
		return SignedURL{}, fmt.Errorf("X-Goog-Algorithm %q", a)
	}
	if h := q.Get("X-Goog-SignedHeaders"); h != "host" {
		return SignedURL{}, fmt.Errorf("X-Goog-SignedHeaders %q, want host", h)
	}
	date, err := time.Parse("20060102T150405Z", q.Get("X-Goog-Date"))
	if err != nil {
		return SignedURL{}, fmt.Errorf("X-Goog-Date: %w", err)
	}
	secs, err := strconv.ParseInt(q.Get("X-Goog-Expires"), 10, 64)
	if err != nil {
		return SignedURL{}, fmt.Errorf("X-Goog-Expires: %w", err)
	}
	accessID, scope, ok := strings.Cut(q.Get("X-Goog-Credential"), "/")
	if !ok || scope != date.Format("20060102")+"/auto/storage/goog4_request" {
		return SignedURL{}, fmt.Errorf("X-Goog-Credential %q: scope does not match X-Goog-Date", q.Get("X-Goog-Credential"))
	}
	sig, err := hex.DecodeString(q.Get("X-Goog-Signature"))
	if err != nil {
		return SignedURL{}, fmt.Errorf("X-Goog-Signature: %w", err)
	}

	// Canonical query: every parameter but the signature, sorted by name,
	// names and values percent-encoded (space as %20).
	var names []string
	for k := range q {
		if k != "X-Goog-Signature" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		for _, v := range q[k] {
			parts = append(parts, escape(k)+"="+escape(v))
		}
	}
	canonical := strings.Join([]string{
		"GET",
		u.EscapedPath(),
		strings.Join(parts, "&"),
		"host:" + u.Hostname(), // the client library signs the host without its port
		"",
		"host",
		"UNSIGNED-PAYLOAD",
	}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := "GOOG4-RSA-SHA256\n" + q.Get("X-Goog-Date") + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	digest := sha256.Sum256([]byte(toSign))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return SignedURL{}, fmt.Errorf("signature does not verify over the canonical request:\n%s\n%w", canonical, err)
	}
	return SignedURL{AccessID: accessID, Date: date, Expires: time.Duration(secs) * time.Second}, nil
}

func escape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
