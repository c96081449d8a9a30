// Package services makes sure the MariaDB, Redis and RabbitMQ servers that
// the demo and the tests talk to are running on 127.0.0.1, installing them
// with apt-get and starting them without systemd when needed.
package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Kind names a server program.
type Kind string

// The supported server kinds.
const (
	MariaDB  Kind = "mariadb"
	Redis    Kind = "redis"
	RabbitMQ Kind = "rabbitmq"
)

// DefaultPort returns the usual TCP port of k, or 0 for an unknown kind.
func DefaultPort(k Kind) int {
	switch k {
	case MariaDB:
		return 3306
	case Redis:
		return 6379
	case RabbitMQ:
		return 5672
	}
	return 0
}

// Server says where a server should listen and where it keeps its files.
type Server struct {
	Kind Kind
	// Port is the TCP port on 127.0.0.1; 0 means DefaultPort(Kind).
	Port int
	// Dir is "" for the Debian system locations: the server is a
	// system-wide daemon that outlives the calling command. Otherwise Dir
	// holds a private data, log and config directory (used by tests) and
	// the server is stopped by the stop func that Ensure returns.
	Dir string
}

// Addr returns the server's TCP address.
func (s Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port()))
}

// String returns e.g. "redis 127.0.0.1:6379".
func (s Server) String() string {
	return string(s.Kind) + " " + s.Addr()
}

func (s Server) port() int {
	if s.Port == 0 {
		return DefaultPort(s.Kind)
	}
	return s.Port
}

// Defaults returns the three servers on their usual ports with Dir "".
func Defaults() []Server {
	return []Server{
		{Kind: MariaDB, Port: DefaultPort(MariaDB)},
		{Kind: Redis, Port: DefaultPort(Redis)},
		{Kind: RabbitMQ, Port: DefaultPort(RabbitMQ)},
	}
}

// Start timeouts; they cover a slow 2-core CI machine.
const (
	mariadbTimeout  = 60 * time.Second
	redisTimeout    = 30 * time.Second
	rabbitmqTimeout = 90 * time.Second
)

// Running reports whether something accepts TCP connections on s.Addr().
func Running(s Server) bool {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Ready checks once that s is usable: a root login with an empty password
// and SELECT 1 for MariaDB, PING for Redis, an AMQP guest login for RabbitMQ.
func Ready(ctx context.Context, s Server) error {
	switch s.Kind {
	case MariaDB:
		return pingMariaDB(ctx, s.Addr())
	case Redis:
		return pingRedis(ctx, s.Addr())
	case RabbitMQ:
		return dialRabbitMQ(ctx, s.Addr())
	}
	return fmt.Errorf("unknown server kind %q", s.Kind)
}

// Ensure makes s usable. If its port already accepts TCP connections on
// 127.0.0.1, it returns (nil, false, nil) without checking further.
// Otherwise it installs the Debian package (only when the binary is
// missing), starts the server and waits until Ready succeeds; it then
// returns started=true and a stop func. If the package's post-install
// script already started a system server, Ensure only waits for it (and,
// for MariaDB, configures the root login) and also reports started=true.
// For a MariaDB server it started, Ensure lets root log in over TCP with an
// empty password.
//
// For Dir != "" stop terminates the server's process group and waits for it
// to exit. For Dir == "" the server is a system daemon meant to outlive the
// command, so stop is a no-op that leaves it running.
//
// Progress and the commands run are logged to log (nil discards them).
func Ensure(ctx context.Context, s Server, log io.Writer) (stop func() error, started bool, err error) {
	if log == nil {
		log = io.Discard
	}
	if DefaultPort(s.Kind) == 0 {
		return nil, false, fmt.Errorf("unknown server kind %q", s.Kind)
	}
	s.Port = s.port()
	if Running(s) {
		return nil, false, nil
	}
	lg := slog.New(slog.NewTextHandler(log, nil)).With("server", s.String())

	installed, err := installIfMissing(ctx, lg, log, binaryOf(s.Kind), packageOf(s.Kind))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", s, err)
	}
	if installed && s.Dir == "" && Running(s) {
		// The package's post-install script started the daemon; it still
		// needs to become usable (MariaDB needs its TCP root login).
		lg.Info("package installation started the server")
		if err := adopt(ctx, lg, s); err != nil {
			return nil, false, fmt.Errorf("%s: %w", s, err)
		}
		return noStop, true, nil
	}

	lg.Info("not running, starting it")
	switch s.Kind {
	case MariaDB:
		stop, err = startMariaDB(ctx, lg, s)
	case Redis:
		stop, err = startRedis(ctx, lg, s)
	case RabbitMQ:
		stop, err = startRabbitMQ(ctx, lg, s)
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", s, err)
	}
	lg.Info("ready")
	return stop, true, nil
}

// noStop is the stop func of system daemons, which are left running.
func noStop() error { return nil }

// adopt waits for a server that someone else just started.
func adopt(ctx context.Context, lg *slog.Logger, s Server) error {
	switch s.Kind {
	case MariaDB:
		return waitReady(ctx, mariadbTimeout, nil, mariadbProbe(ctx, lg, s, ""))
	case Redis:
		return waitReady(ctx, redisTimeout, nil, func(ctx context.Context) error { return pingRedis(ctx, s.Addr()) })
	default:
		return waitReady(ctx, rabbitmqTimeout, nil, func(ctx context.Context) error { return dialRabbitMQ(ctx, s.Addr()) })
	}
}

// errNotReady wraps the last probe error when a server did not become usable.
var errNotReady = errors.New("not ready")

// waitReady polls probe until it succeeds, timeout passes, ctx ends or p
// (if not nil) fails. A daemonizing p may exit with status 0 meanwhile.
func waitReady(ctx context.Context, timeout time.Duration, p *proc, probe func(context.Context) error) error {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var done <-chan struct{}
	if p != nil {
		done = p.done
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		last = probe(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w after %v (limit %v): %v; last error: %v", errNotReady, time.Since(begin).Round(time.Second), timeout, ctx.Err(), last)
		case <-done:
			if p.err != nil || !p.daemonizes {
				return fmt.Errorf("%s exited before the server was ready (%v); last error: %v", p.args[0], exitText(p.err), last)
			}
			done = nil // the launcher forked the daemon; keep polling
		case <-tick.C:
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
