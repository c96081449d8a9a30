package services

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"
)

// TestMariaDBConfiguresRootTCPLogin reproduces a fresh Debian install, where
// root@localhost authenticates only via unix_socket and host names are
// resolved, and checks that mariadbProbe makes the TCP root login work.
func TestMariaDBConfiguresRootTCPLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server")
	}
	if os.Geteuid() != 0 {
		t.Skip("the unix_socket login as MariaDB root needs OS root")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	lg := slog.New(slog.NewTextHandler(t.Output(), nil))
	s := Server{Kind: MariaDB, Port: testFreePort(t), Dir: t.TempDir()}
	f := mariadbPrivateFiles(s)
	if err := os.MkdirAll(f.tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := lookBinary("mariadbd")
	if err != nil {
		t.Skip(err)
	}
	installDB, err := lookBinary("mariadb-install-db")
	if err != nil {
		t.Skip(err)
	}

	// Like mariadbInstallDBArgs but with Debian's default socket auth.
	install := slices.DeleteFunc(mariadbInstallDBArgs(installDB, f, os.Geteuid()), func(a string) bool {
		return a == "--auth-root-authentication-method=normal"
	})
	if err := runQuiet(ctx, lg, install, nil); err != nil {
		t.Fatal(err)
	}
	args := slices.DeleteFunc(mariadbdArgs(bin, s.port(), f, os.Geteuid()), func(a string) bool {
		return a == "--skip-name-resolve"
	})
	p, err := startProc(lg, args, os.Environ(), s.Dir, f.out, false, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stopGroup(30 * time.Second); err != nil {
			t.Error(err)
		}
	})

	// Wait until the server answers, refusing root over TCP.
	err = waitReady(ctx, mariadbTimeout, p, func(ctx context.Context) error {
		if err := pingMariaDB(ctx, s.Addr()); !isAuthError(err) {
			return err // not up yet (or unexpectedly usable)
		}
		return nil
	})
	if err != nil {
		t.Fatal(startFailure(err, args, f.errLog))
	}
	if err := pingMariaDB(ctx, s.Addr()); err == nil {
		t.Fatal("root logged in over TCP before configuration; the test does not reproduce Debian's setup")
	}

	probe := mariadbProbe(ctx, lg, s, f.socket)
	if err := waitReady(ctx, 30*time.Second, p, probe); err != nil {
		t.Fatal(startFailure(err, args, f.errLog))
	}
	// The OS root user can still log in through the socket.
	client, err := lookBinary("mariadb")
	if err != nil {
		t.Fatal(err)
	}
	check := []string{client, "--protocol=socket", "--socket=" + f.socket, "-uroot", "-e", "SELECT 1"}
	if err := runQuiet(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), check, nil); err != nil {
		t.Errorf("socket login after configuration: %v", err)
	}
}
