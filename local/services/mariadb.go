package services

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Debian locations of the system MariaDB.
const (
	mariadbSystemDataDir = "/var/lib/mysql"
	mariadbSystemRunDir  = "/run/mysqld"
	mariadbSystemOut     = "/var/log/mysql/mariadbd-ensure.log"
)

// rootTCPLoginSQL lets root log in over TCP with an empty password. A fresh
// Debian install authenticates root@localhost only via unix_socket; keeping
// unix_socket as the first method leaves `sudo mariadb` working. The
// 127.0.0.1 account is what matches when the server runs with
// skip-name-resolve.
const rootTCPLoginSQL = "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');" +
	" CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('');" +
	" GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;"

// mariadbFiles are the paths a private (Dir != "") MariaDB server uses.
// A private tmpdir matters: concurrent bootstraps sharing /tmp fail
// randomly with "Unknown table 'mysql.tmp_user_sys'".
type mariadbFiles struct {
	data, tmp, socket, pid, errLog, out string
}

// maxSocketPath stays below the 108-byte sun_path limit of Linux.
const maxSocketPath = 100

func mariadbPrivateFiles(s Server) mariadbFiles {
	f := mariadbFiles{
		data:   filepath.Join(s.Dir, "data"),
		tmp:    filepath.Join(s.Dir, "tmp"),
		socket: filepath.Join(s.Dir, "mysqld.sock"),
		pid:    filepath.Join(s.Dir, "mysqld.pid"),
		errLog: filepath.Join(s.Dir, "mariadbd.log"),
		out:    filepath.Join(s.Dir, "mariadbd.out"),
	}
	if len(f.socket) > maxSocketPath {
		f.socket = filepath.Join(os.TempDir(), "mariadb-"+strconv.Itoa(s.port())+".sock")
	}
	return f
}

// mariadbInstallDBArgs returns the mariadb-install-db command line for a
// private data directory. mariadbd refuses to run as root unless told to.
func mariadbInstallDBArgs(bin string, f mariadbFiles, euid int) []string {
	args := []string{bin, "--no-defaults", "--datadir=" + f.data, "--tmpdir=" + f.tmp,
		"--auth-root-authentication-method=normal", "--skip-test-db"}
	if euid == 0 {
		args = append(args, "--user=root")
	}
	return args
}

// mariadbdArgs returns the command line of a private server. --no-defaults
// keeps /etc/mysql out; skip-name-resolve makes 127.0.0.1 clients match
// root@127.0.0.1, which mariadb-install-db created without a password.
func mariadbdArgs(bin string, port int, f mariadbFiles, euid int) []string {
	args := []string{bin, "--no-defaults"}
	if euid == 0 {
		args = append(args, "--user=root")
	}
	return append(args,
		"--datadir="+f.data,
		"--tmpdir="+f.tmp,
		"--socket="+f.socket,
		"--port="+strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--pid-file="+f.pid,
		"--log-error="+f.errLog)
}

// mariadbSystemArgs returns the command line of the system server, which
// otherwise reads its settings from /etc/mysql.
func mariadbSystemArgs(bin string, port, euid int) []string {
	return asRoot(euid, bin, "--user=mysql", "--port="+strconv.Itoa(port))
}

func startMariaDB(ctx context.Context, lg *slog.Logger, s Server) (func() error, error) {
	bin, err := lookBinary("mariadbd")
	if err != nil {
		return nil, err
	}
	installDB, err := lookBinary("mariadb-install-db")
	if err != nil {
		return nil, err
	}
	euid := os.Geteuid()
	if s.Dir == "" {
		return noStop, startSystemMariaDB(ctx, lg, s, bin, installDB, euid)
	}

	f := mariadbPrivateFiles(s)
	if err := os.MkdirAll(f.tmp, 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(f.data, "mysql")); errors.Is(err, os.ErrNotExist) {
		if err := runQuiet(ctx, lg, mariadbInstallDBArgs(installDB, f, euid), nil); err != nil {
			return nil, err
		}
	}
	args := mariadbdArgs(bin, s.port(), f, euid)
	p, err := startProc(lg, args, os.Environ(), s.Dir, f.out, false, false)
	if err != nil {
		return nil, err
	}
	err = waitReady(ctx, mariadbTimeout, p, func(ctx context.Context) error { return pingMariaDB(ctx, s.Addr()) })
	if err != nil {
		_ = p.stopGroup(10 * time.Second)
		return nil, startFailure(err, args, f.errLog, f.out)
	}
	return func() error { return p.stopGroup(30 * time.Second) }, nil
}

// startSystemMariaDB does what the package's init script would: initialise
// /var/lib/mysql if needed, create the socket directory and start mariadbd
// in its own session so that it outlives the command.
func startSystemMariaDB(ctx context.Context, lg *slog.Logger, s Server, bin, installDB string, euid int) error {
	if _, err := os.Stat(filepath.Join(mariadbSystemDataDir, "mysql")); errors.Is(err, os.ErrNotExist) {
		args := asRoot(euid, installDB, "--user=mysql", "--datadir="+mariadbSystemDataDir, "--skip-test-db")
		if err := runQuiet(ctx, lg, args, nil); err != nil {
			return err
		}
	}
	if err := runQuiet(ctx, lg, asRoot(euid, "install", "-d", "-o", "mysql", "-g", "mysql", "-m", "0755", mariadbSystemRunDir), nil); err != nil {
		return err
	}
	args := mariadbSystemArgs(bin, s.port(), euid)
	out := systemOutFile(euid, mariadbSystemOut)
	p, err := startProc(lg, args, os.Environ(), "/", out, true, false)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, mariadbTimeout, p, mariadbProbe(ctx, lg, s, "")); err != nil {
		return startFailure(err, args, out, "/var/log/mysql/error.log")
	}
	return nil
}

// mariadbProbe returns a readiness probe for a server we started: when the
// TCP root login is refused, it configures it once over the unix socket
// (the default one from /etc/mysql when socket is "").
func mariadbProbe(ctx context.Context, lg *slog.Logger, s Server, socket string) func(context.Context) error {
	configured := false
	return func(pctx context.Context) error {
		err := pingMariaDB(pctx, s.Addr())
		if err == nil || configured || !isAuthError(err) {
			return err
		}
		client, lerr := lookBinary("mariadb")
		if lerr != nil {
			return fmt.Errorf("%w; cannot configure the root login: %w", err, lerr)
		}
		lg.Info("root cannot log in over TCP, allowing an empty password", "error", err)
		if cerr := runQuiet(ctx, lg, mariadbClientArgs(client, socket, os.Geteuid()), nil); cerr != nil {
			return fmt.Errorf("%w; configuring the root login failed: %w", err, cerr)
		}
		configured = true
		return pingMariaDB(pctx, s.Addr())
	}
}

// mariadbClientArgs returns the command that runs rootTCPLoginSQL as root
// over the unix socket.
func mariadbClientArgs(client, socket string, euid int) []string {
	args := []string{client, "--protocol=socket"}
	if socket != "" {
		args = append(args, "--socket="+socket)
	}
	return asRoot(euid, append(args, "-uroot", "-e", rootTCPLoginSQL)...)
}

// isAuthError reports whether err means the server refused root's login.
func isAuthError(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1045, 1698, 1130: // access denied, no password given, host not allowed
		return true
	}
	return false
}

// pingMariaDB logs in as root with an empty password over TCP and runs
// SELECT 1.
func pingMariaDB(ctx context.Context, addr string) error {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = addr
	cfg.Timeout = 2 * time.Second
	cfg.Logger = &mysql.NopLogger{} // startup probes fail by design
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return err
	}
	if one != 1 {
		return fmt.Errorf("SELECT 1 returned %d", one)
	}
	return nil
}
