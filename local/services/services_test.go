package services

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
)

// TestEnsureStartsOnOtherPorts starts private servers next to the system
// ones and checks they are usable, not started twice, and stopped.
func TestEnsureStartsOnOtherPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers")
	}
	t.Parallel()
	for _, kind := range []Kind{MariaDB, Redis, RabbitMQ} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			s := Server{Kind: kind, Port: testFreePort(t), Dir: t.TempDir()}

			begin := time.Now()
			stop, started, err := Ensure(ctx, s, t.Output())
			if err != nil {
				t.Fatalf("Ensure(%v) = %v", s, err)
			}
			// Registered after TempDir, so it runs before the dir is removed.
			t.Cleanup(func() {
				if stop == nil {
					return
				}
				if err := stop(); err != nil {
					t.Errorf("stop %v: %v", s, err)
				}
				if Running(s) {
					t.Errorf("%v still accepts connections after stop", s)
				}
			})
			if !started {
				t.Fatalf("Ensure(%v) started = false on a free port", s)
			}
			if stop == nil {
				t.Fatalf("Ensure(%v) returned a nil stop func with started = true", s)
			}
			t.Logf("%v ready after %v", s, time.Since(begin).Round(time.Millisecond))

			use(ctx, t, s)

			stop2, started2, err := Ensure(ctx, s, t.Output())
			if err != nil || started2 || stop2 != nil {
				t.Errorf("second Ensure(%v) = (stop nil %t, %t, %v), want (true, false, <nil>)", s, stop2 == nil, started2, err)
			}
		})
	}
}

// use does some real work with s.
func use(ctx context.Context, t *testing.T, s Server) {
	t.Helper()
	switch s.Kind {
	case MariaDB:
		cfg := mysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr = "root", "tcp", s.Addr()
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1) // USE must apply to the next statements
		for _, q := range []string{
			"CREATE DATABASE ensure_test",
			"USE ensure_test",
			"CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))",
			"INSERT INTO t VALUES (1, 'one')",
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		var v string
		if err := db.QueryRowContext(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "one" {
			t.Fatalf("SELECT = %q, %v; want \"one\"", v, err)
		}
	case Redis:
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
		defer c.Close()
		if err := c.Set(ctx, "ensure-test", "v", 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
		if got, err := c.Get(ctx, "ensure-test").Result(); err != nil || got != "v" {
			t.Fatalf("GET = %q, %v; want \"v\"", got, err)
		}
	case RabbitMQ:
		conn, err := amqp.Dial("amqp://guest:guest@" + s.Addr() + "/")
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("channel: %v", err)
		}
		q, err := ch.QueueDeclare("ensure-test", false, true, false, false, nil)
		if err != nil {
			t.Fatalf("queue declare: %v", err)
		}
		if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("hi")}); err != nil {
			t.Fatalf("publish: %v", err)
		}
		// Publishing is asynchronous; poll until the message is routed.
		for {
			msg, ok, err := ch.Get(q.Name, true)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if ok {
				if string(msg.Body) != "hi" {
					t.Fatalf("got message %q, want \"hi\"", msg.Body)
				}
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("published message never arrived")
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// TestEnsureDetectsRunning checks that any listener counts as running: no
// install, no start, no files.
func TestEnsureDetectsRunning(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	for _, kind := range []Kind{MariaDB, Redis, RabbitMQ} {
		dir := t.TempDir()
		s := Server{Kind: kind, Port: port, Dir: dir}
		stop, started, err := Ensure(t.Context(), s, t.Output())
		if err != nil || started || stop != nil {
			t.Errorf("Ensure(%v) = (stop nil %t, %t, %v), want (true, false, <nil>)", s, stop == nil, started, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("Ensure(%v) wrote %d entries into Dir", s, len(entries))
		}
	}
}

func TestEnsureUnknownKind(t *testing.T) {
	t.Parallel()
	_, started, err := Ensure(t.Context(), Server{Kind: "postgres"}, nil)
	if err == nil || started {
		t.Errorf("Ensure(postgres) = (%t, %v), want an error", started, err)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	want := []Server{{MariaDB, 3306, ""}, {Redis, 6379, ""}, {RabbitMQ, 5672, ""}}
	if diff := cmp.Diff(want, Defaults()); diff != "" {
		t.Errorf("Defaults() mismatch (-want +got):\n%s", diff)
	}
}

func TestServerAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    Server
		want string
	}{
		{Server{Kind: Redis}, "redis 127.0.0.1:6379"},
		{Server{Kind: MariaDB, Port: 3307}, "mariadb 127.0.0.1:3307"},
		{Server{Kind: RabbitMQ}, "rabbitmq 127.0.0.1:5672"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.s.String()); diff != "" {
			t.Errorf("%#v.String() mismatch (-want +got):\n%s", tt.s, diff)
		}
	}
}

func TestRedisArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    Server
		want []string
	}{
		{
			name: "system",
			s:    Server{Kind: Redis, Port: 6379},
			want: []string{"redis-server", "--port", "6379", "--bind", "127.0.0.1", "-::1",
				"--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
				"--logfile", "/var/log/redis/redis-server-ensure.log", "--daemonize", "yes"},
		},
		{
			name: "private",
			s:    Server{Kind: Redis, Port: 7000, Dir: "/d"},
			want: []string{"redis-server", "--port", "7000", "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", "/d",
				"--logfile", "/d/redis.log", "--daemonize", "no"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, redisArgs("redis-server", tt.s)); diff != "" {
				t.Errorf("redisArgs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMariaDBArgs(t *testing.T) {
	t.Parallel()
	f := mariadbPrivateFiles(Server{Kind: MariaDB, Port: 3307, Dir: "/d"})
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{
			name: "install-db as root",
			got:  mariadbInstallDBArgs("mariadb-install-db", f, 0),
			want: []string{"mariadb-install-db", "--no-defaults", "--datadir=/d/data", "--tmpdir=/d/tmp",
				"--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"},
		},
		{
			name: "install-db as user",
			got:  mariadbInstallDBArgs("mariadb-install-db", f, 1000),
			want: []string{"mariadb-install-db", "--no-defaults", "--datadir=/d/data", "--tmpdir=/d/tmp",
				"--auth-root-authentication-method=normal", "--skip-test-db"},
		},
		{
			name: "mariadbd as root",
			got:  mariadbdArgs("mariadbd", 3307, f, 0),
			want: []string{"mariadbd", "--no-defaults", "--user=root", "--datadir=/d/data",
				"--tmpdir=/d/tmp", "--socket=/d/mysqld.sock", "--port=3307", "--bind-address=127.0.0.1",
				"--skip-name-resolve", "--pid-file=/d/mysqld.pid", "--log-error=/d/mariadbd.log"},
		},
		{
			name: "mariadbd as user",
			got:  mariadbdArgs("mariadbd", 3307, f, 1000),
			want: []string{"mariadbd", "--no-defaults", "--datadir=/d/data",
				"--tmpdir=/d/tmp", "--socket=/d/mysqld.sock", "--port=3307", "--bind-address=127.0.0.1",
				"--skip-name-resolve", "--pid-file=/d/mysqld.pid", "--log-error=/d/mariadbd.log"},
		},
		{
			name: "system as root",
			got:  mariadbSystemArgs("mariadbd", 3306, 0),
			want: []string{"mariadbd", "--user=mysql", "--port=3306"},
		},
		{
			name: "system as user",
			got:  mariadbSystemArgs("mariadbd", 3306, 1000),
			want: []string{"sudo", "mariadbd", "--user=mysql", "--port=3306"},
		},
		{
			name: "client default socket",
			got:  mariadbClientArgs("mariadb", "", 0),
			want: []string{"mariadb", "--protocol=socket", "-uroot", "-e", rootTCPLoginSQL},
		},
		{
			name: "client private socket as user",
			got:  mariadbClientArgs("mariadb", "/d/s.sock", 1000),
			want: []string{"sudo", "mariadb", "--protocol=socket", "--socket=/d/s.sock", "-uroot", "-e", rootTCPLoginSQL},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMariaDBLongSocketPath(t *testing.T) {
	t.Parallel()
	f := mariadbPrivateFiles(Server{Kind: MariaDB, Port: 3307, Dir: "/" + strings.Repeat("x", 120)})
	want := filepath.Join(os.TempDir(), "mariadb-3307.sock")
	if diff := cmp.Diff(want, f.socket); diff != "" {
		t.Errorf("socket mismatch (-want +got):\n%s", diff)
	}
}

func TestIsAuthError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1045}, true},
		{&mysql.MySQLError{Number: 1698}, true},
		{&mysql.MySQLError{Number: 1130}, true},
		{&mysql.MySQLError{Number: 1064}, false},
		{errors.New("connection refused"), false},
	}
	for _, tt := range tests {
		if got := isAuthError(tt.err); got != tt.want {
			t.Errorf("isAuthError(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}

func TestRabbitMQPrivateEnv(t *testing.T) {
	t.Parallel()
	want := []string{
		"HOME=/d",
		"RABBITMQ_NODENAME=rabbit-ensure-5673@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=5673",
		"RABBITMQ_DIST_PORT=40000",
		"RABBITMQ_CONF_ENV_FILE=/d/rabbitmq-env.conf",
		"RABBITMQ_CONFIG_FILE=/d/rabbitmq.conf",
		"RABBITMQ_ADVANCED_CONFIG_FILE=/d/advanced.config",
		"RABBITMQ_ENABLED_PLUGINS_FILE=/d/enabled_plugins",
		"RABBITMQ_MNESIA_BASE=/d/mnesia",
		"RABBITMQ_LOG_BASE=/d/log",
		"RABBITMQ_PID_FILE=/d/rabbitmq.pid",
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	}
	got := rabbitmqPrivateEnv(Server{Kind: RabbitMQ, Port: 5673, Dir: "/d"}, 40000)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rabbitmqPrivateEnv mismatch (-want +got):\n%s", diff)
	}
}

func TestAptInstallArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		euid int
		want []string
	}{
		{0, []string{"apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "redis-server"}},
		{1000, []string{"sudo", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "redis-server"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, aptInstallArgs(tt.euid, "redis-server")); diff != "" {
			t.Errorf("aptInstallArgs(%d) mismatch (-want +got):\n%s", tt.euid, diff)
		}
	}
}

func TestShellJoin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"redis-server", "--save", "", "--dir", "/var/lib/redis"}, "redis-server --save '' --dir /var/lib/redis"},
		{[]string{"mariadb", "-e", "SELECT 'x'"}, `mariadb -e 'SELECT '\''x'\'''`},
		{[]string{"A=b c", "--bind", "-::1"}, "'A=b c' --bind -::1"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, shellJoin(tt.args)); diff != "" {
			t.Errorf("shellJoin(%q) mismatch (-want +got):\n%s", tt.args, diff)
		}
	}
}

func TestTailLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb", 5, "a\nb"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tailLines(tt.in, tt.n)); diff != "" {
			t.Errorf("tailLines(%q, %d) mismatch (-want +got):\n%s", tt.in, tt.n, diff)
		}
	}
}

func TestStartFailureShowsCommandAndLog(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(log, []byte("line1\nboom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := startFailure(errors.New("not ready"), []string{"srv", "--port", "1"}, log, "/nonexistent.log")
	for _, want := range []string{"not ready", "ran: srv --port 1", "boom", "/nonexistent.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func testFreePort(t *testing.T) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHeadTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\nd\n", 2, "a\nb\nc\nd"},
		{"a\nb\nc\nd\ne\n", 2, "a\nb\n[...]\nd\ne"},
		{"", 1, ""},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, headTail(tt.in, tt.n)); diff != "" {
			t.Errorf("headTail(%q, %d) mismatch (-want +got):\n%s", tt.in, tt.n, diff)
		}
	}
}

// TestEnsureReportsStartFailure checks the error of a server that exits at
// once: it names the command and shows the server's output.
func TestEnsureReportsStartFailure(t *testing.T) {
	t.Parallel()
	if _, err := lookBinary("redis-server"); err != nil {
		t.Skip(err) // Ensure would install it
	}
	s := Server{Kind: Redis, Port: 70000, Dir: t.TempDir()} // redis rejects the port
	stop, started, err := Ensure(t.Context(), s, t.Output())
	if err == nil || started || stop != nil {
		t.Fatalf("Ensure(%v) = (stop nil %t, %t, %v), want an error", s, stop == nil, started, err)
	}
	t.Logf("reported error:\n%v", err)
	for _, want := range []string{"exited before the server was ready", "ran: ", "--port 70000", "redis.out"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestPingRedisReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reply   string
		wantErr bool
	}{
		{"+PONG\r\n", false},
		{"-LOADING Redis is loading the dataset in memory\r\n", true},
		{"-NOAUTH Authentication required.\r\n", true},
	}
	for _, tt := range tests {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 64)
			if n, _ := c.Read(buf); string(buf[:n]) == "*1\r\n$4\r\nPING\r\n" {
				c.Write([]byte(tt.reply))
			}
		}()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = pingRedis(ctx, l.Addr().String())
		cancel()
		l.Close()
		if (err != nil) != tt.wantErr {
			t.Errorf("pingRedis with reply %q = %v, want error %t", tt.reply, err, tt.wantErr)
		}
	}
}
