package serverenv_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanoutexport/fanoutexport/local/services"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

// tlsRedis is a redis-server of our own with TLS only (like Memorystore
// with SERVER_AUTHENTICATION) and a password (like Memorystore AUTH).
type tlsRedis struct {
	addr     string
	password string
	caPEM    string // the CA that signed the server certificate
	caFile   string
}

// TestTLSAndAuth connects the way the functions connect to Memorystore:
// TLS verified against a given CA, plus the AUTH string.
func TestTLSAndAuth(t *testing.T) {
	t.Parallel()
	srv := startTLSRedis(t)
	otherCA, _ := newCA(t, "some other CA")

	ping := func(c config.Redis) error {
		t.Helper()
		client, err := serverenv.OpenRedis(c)
		if err != nil {
			t.Fatalf("serverenv.OpenRedis: %v", err)
		}
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return client.Ping(ctx).Err()
	}

	t.Run("CA as PEM text (REDIS_CA_CERT)", func(t *testing.T) {
		t.Parallel()
		c := config.Redis{Addr: srv.addr, Password: srv.password, TLS: true, CACert: srv.caPEM}
		roundTrip(t, c, "pem")
	})

	t.Run("CA from a file (REDIS_CA_CERT_FILE)", func(t *testing.T) {
		t.Parallel()
		c := config.Redis{Addr: srv.addr, Password: srv.password, TLS: true, CAFile: srv.caFile}
		roundTrip(t, c, "file")
	})

	t.Run("wrong password is refused", func(t *testing.T) {
		t.Parallel()
		err := ping(config.Redis{Addr: srv.addr, Password: "not-the-password", TLS: true, CACert: srv.caPEM})
		if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Fatalf("PING with a wrong password: err = %v, want a WRONGPASS auth error", err)
		}
	})

	t.Run("no password is refused", func(t *testing.T) {
		t.Parallel()
		err := ping(config.Redis{Addr: srv.addr, TLS: true, CACert: srv.caPEM})
		if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Fatalf("PING without a password: err = %v, want a NOAUTH error", err)
		}
	})

	t.Run("a CA that did not sign the server is refused", func(t *testing.T) {
		t.Parallel()
		err := ping(config.Redis{Addr: srv.addr, Password: srv.password, TLS: true, CACert: otherCA})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("PING trusting another CA: err = %v, want x509.UnknownAuthorityError", err)
		}
	})

	t.Run("without a CA the system roots do not trust the server", func(t *testing.T) {
		t.Parallel()
		err := ping(config.Redis{Addr: srv.addr, Password: srv.password, TLS: true})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("PING with system roots only: err = %v, want x509.UnknownAuthorityError", err)
		}
	})

	t.Run("plain TCP cannot talk to the TLS port", func(t *testing.T) {
		t.Parallel()
		if err := ping(config.Redis{Addr: srv.addr, Password: srv.password}); err == nil {
			t.Fatal("PING over plain TCP to the TLS port succeeded")
		}
	})
}

func TestOptionsRejectsACAWithoutCertificate(t *testing.T) {
	t.Parallel()
	_, err := serverenv.RedisOptions(config.Redis{Addr: "127.0.0.1:6378", TLS: true, CACert: "not a certificate"})
	if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("Options with a bad CA: err = %v, want no PEM certificate", err)
	}
	_, err = serverenv.RedisOptions(config.Redis{Addr: "127.0.0.1:6378", TLS: true, CAFile: filepath.Join(t.TempDir(), "missing.pem")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Options with a missing CA file: err = %v, want os.ErrNotExist", err)
	}
}

// roundTrip writes and reads back a key, then removes it.
func roundTrip(t *testing.T, c config.Redis, name string) {
	t.Helper()
	client, err := serverenv.OpenRedis(c)
	if err != nil {
		t.Fatalf("serverenv.OpenRedis: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	key := "redisconn-test-" + name
	want := "value-" + randomHex(t, 8)
	if err := client.Set(ctx, key, want, time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	t.Cleanup(func() { client.Del(context.Background(), key) })
	got, err := client.Get(ctx, key).Result()
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if got != want {
		t.Fatalf("GET %s = %q, want %q", key, got, want)
	}
}

// startTLSRedis starts redis-server on a free TLS port (no plain port) with
// a certificate for 127.0.0.1 signed by a CA made for this test.
func startTLSRedis(t *testing.T) *tlsRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	dir := t.TempDir()
	caPEM, ca := newCA(t, "fanoutexport test CA")
	certPEM, keyPEM := newServerCert(t, ca)
	files := map[string]string{"ca.pem": caPEM, "server.pem": certPEM, "server.key": keyPEM}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := &tlsRedis{password: randomHex(t, 16), caPEM: caPEM, caFile: filepath.Join(dir, "ca.pem")}

	// A free port can be taken between our check and the server's bind:
	// try a few.
	var lastOut string
	for attempt := 0; attempt < 3; attempt++ {
		port, err := services.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		srv.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		out := &syncBuffer{}
		cmd := exec.Command(bin,
			"--port", "0",
			"--bind", "127.0.0.1",
			"--tls-port", strconv.Itoa(port),
			"--tls-cert-file", filepath.Join(dir, "server.pem"),
			"--tls-key-file", filepath.Join(dir, "server.key"),
			"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
			"--tls-auth-clients", "no",
			"--requirepass", srv.password,
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--daemonize", "no",
		)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		if waitTLS(srv.addr, exited) {
			t.Cleanup(stop)
			return srv
		}
		stop()
		lastOut = out.String()
		if strings.Contains(lastOut, "TLS") && (strings.Contains(lastOut, "not supported") || strings.Contains(lastOut, "Bad directive")) {
			t.Skipf("this redis-server has no TLS support:\n%s", lastOut)
		}
	}
	t.Fatalf("redis-server did not accept TLS connections on %s:\n%s", srv.addr, lastOut)
	return nil
}

// waitTLS waits until a TLS handshake with addr completes (certificate not
// verified: the server is ours; the tests verify it).
func waitTLS(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		d := &net.Dialer{Timeout: time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe only
		if err == nil {
			conn.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// newCA returns a self-signed CA as PEM, and its certificate and key for
// signing.
func newCA(t *testing.T, name string) (string, *issuer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), &issuer{cert: cert, key: key}
}

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newServerCert returns a server certificate for 127.0.0.1 and localhost
// signed by ca, and its key, as PEM.
func newServerCert(t *testing.T, ca *issuer) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// syncBuffer collects the server's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
