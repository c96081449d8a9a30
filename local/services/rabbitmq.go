package services

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitmqScript is the real start script on Debian; /usr/sbin/rabbitmq-server
// is a wrapper that switches to the rabbitmq user and /var/lib/rabbitmq,
// which a private server must avoid.
const rabbitmqScript = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// Debian locations of the system RabbitMQ.
const (
	rabbitmqSystemLogDir = "/var/log/rabbitmq"
	rabbitmqSystemOut    = "/var/log/rabbitmq/ensure-startup.log"
)

// rabbitmqNodeName names a private node; the port makes it unique among
// running nodes, and stable for a reused Dir (mnesia data is per node).
func rabbitmqNodeName(port int) string {
	return "rabbit-ensure-" + strconv.Itoa(port) + "@localhost"
}

// rabbitmqPrivateEnv returns the variables that isolate a private node from
// the system one: its own node name, ports, files and Erlang cookie (HOME).
// RABBITMQ_CONF_ENV_FILE replaces /etc/rabbitmq/rabbitmq-env.conf, which
// could set the system node name.
func rabbitmqPrivateEnv(s Server, distPort int) []string {
	in := func(name string) string { return filepath.Join(s.Dir, name) }
	return []string{
		"HOME=" + s.Dir,
		"RABBITMQ_NODENAME=" + rabbitmqNodeName(s.port()),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(s.port()),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(distPort),
		"RABBITMQ_CONF_ENV_FILE=" + in("rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE=" + in("rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + in("advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + in("enabled_plugins"),
		"RABBITMQ_MNESIA_BASE=" + in("mnesia"),
		"RABBITMQ_LOG_BASE=" + in("log"),
		"RABBITMQ_PID_FILE=" + in("rabbitmq.pid"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	}
}

// rabbitmqPrivateFiles are written before the first start; empty config
// files keep the ones in /etc/rabbitmq out.
var rabbitmqPrivateFiles = map[string]string{
	"rabbitmq-env.conf": "",
	"rabbitmq.conf":     "",
	"enabled_plugins":   "[].\n",
}

func startRabbitMQ(ctx context.Context, lg *slog.Logger, s Server) (func() error, error) {
	if s.Dir == "" {
		return noStop, startSystemRabbitMQ(ctx, lg, s)
	}
	bin := rabbitmqScript
	if _, err := os.Stat(bin); err != nil {
		if bin, err = lookBinary("rabbitmq-server"); err != nil {
			return nil, err
		}
	}
	for name, content := range rabbitmqPrivateFiles {
		p := filepath.Join(s.Dir, name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	distPort, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("pick an Erlang distribution port: %w", err)
	}
	env := rabbitmqPrivateEnv(s, distPort)
	// Inherited RABBITMQ_* variables could point back at system files.
	p, err := startProc(lg.With("env", env), []string{bin}, withEnv([]string{"RABBITMQ_"}, env...),
		s.Dir, filepath.Join(s.Dir, "rabbitmq.out"), false, false)
	if err != nil {
		return nil, err
	}
	err = waitReady(ctx, rabbitmqTimeout, p, func(ctx context.Context) error { return dialRabbitMQ(ctx, s.Addr()) })
	if err != nil {
		_ = p.stopGroup(20 * time.Second)
		logFile := filepath.Join(s.Dir, "log", rabbitmqNodeName(s.port())+".log")
		return nil, startFailure(err, append(env, bin), logFile, filepath.Join(s.Dir, "rabbitmq.out"))
	}
	// SIGTERM makes the script and the Erlang VM shut the node down cleanly.
	return func() error { return p.stopGroup(30 * time.Second) }, nil
}

// startSystemRabbitMQ runs `rabbitmq-server -detached` as the package's init
// script would; the wrapper switches to the rabbitmq user.
func startSystemRabbitMQ(ctx context.Context, lg *slog.Logger, s Server) error {
	bin, err := lookBinary("rabbitmq-server")
	if err != nil {
		return err
	}
	euid := os.Geteuid()
	args := asRoot(euid, bin, "-detached")
	env := os.Environ()
	if s.port() != DefaultPort(RabbitMQ) {
		// sudo drops the environment, so pass the port through env(1).
		port := "RABBITMQ_NODE_PORT=" + strconv.Itoa(s.port())
		env = append(env, port)
		if euid != 0 {
			args = append([]string{"sudo", "env", port}, args[1:]...)
		}
	}
	out := systemOutFile(euid, rabbitmqSystemOut)
	p, err := startProc(lg, args, env, "/", out, true, true)
	if err != nil {
		return err
	}
	err = waitReady(ctx, rabbitmqTimeout, p, func(ctx context.Context) error { return dialRabbitMQ(ctx, s.Addr()) })
	if err != nil {
		return startFailure(err, args, append([]string{out}, newestLogs(rabbitmqSystemLogDir, 1)...)...)
	}
	return nil
}

// newestLogs returns up to n most recently modified *.log files in dir; the
// node's log file name depends on the host name.
func newestLogs(dir string, n int) []string {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	mod := map[string]time.Time{}
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			mod[p] = st.ModTime()
		}
	}
	sort.Slice(paths, func(i, j int) bool { return mod[paths[i]].After(mod[paths[j]]) })
	if len(paths) > n {
		paths = paths[:n]
	}
	return paths
}

// dialRabbitMQ opens and closes an AMQP connection as guest.
func dialRabbitMQ(ctx context.Context, addr string) error {
	type result struct {
		c   *amqp.Connection
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/", amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		return r.c.Close()
	case <-ctx.Done():
		// Close the connection when the abandoned dial finishes.
		go func() {
			if r := <-ch; r.err == nil {
				r.c.Close()
			}
		}()
		return ctx.Err()
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: the
// one helper for every server or test that needs a spare port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
