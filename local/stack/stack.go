// Package stack runs the whole system on one machine: the Pub/Sub and
// Cloud Storage emulators in-process, each function in its own
// functions-framework process (as in production, picked by
// FUNCTION_TARGET), the push relay, and the MQ1 shim consuming
// continuously. MariaDB, Redis and RabbitMQ are the real servers.
package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/local/relay"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Binaries built by Build.
const (
	FnServer = "fnserver"
	Shim     = "shim"
)

// Build compiles the function server and the shim into dir.
func Build(ctx context.Context, moduleRoot, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "./local/cmd/fnserver", "./local/cmd/shim")
	cmd.Dir = moduleRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// Config says how to run the stack.
type Config struct {
	BinDir      string // holds FnServer and Shim
	Project     string
	PubSubAddr  string // "127.0.0.1:8085"; port 0 picks one
	GCSHost     string
	GCSPort     uint16 // 4443; 0 picks one
	Bucket      string
	NamePrefix  string        // PUBSUB_NAME_PREFIX
	Backoff     time.Duration // relay's retry backoff (60 s in production)
	AckDeadline time.Duration // subscriptions' ack deadline
	Duplicate   bool          // relay delivers every message twice
	// Env is added to every process (DSNs, Redis prefix, queue names...).
	Env []string
	// EnvFor is added to one entry point's process (or "shim").
	EnvFor map[string][]string
	// LogDir gets one log file per process; "" discards their output.
	LogDir string
	Log    *slog.Logger
}

// Stack is a running local system.
type Stack struct {
	cfg        Config
	PubSub     *pstest.Server
	GCS        *fakestorage.Server
	Relay      *relay.Relay
	PubSubAddr string
	StorageURL string // http://host:port of the GCS emulator
	URLs       map[string]string

	procs  []*proc
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *tail
	done chan struct{}
}

// Start brings everything up; Close takes it down.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Second
	}
	if cfg.AckDeadline == 0 {
		cfg.AckDeadline = 60 * time.Second
	}
	s := &Stack{cfg: cfg, URLs: map[string]string{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.PubSub, err = emulators.StartPubSub(cfg.PubSubAddr); err != nil {
		return nil, err
	}
	s.PubSubAddr = s.PubSub.Addr
	fns := topology.Functions()
	names := topology.Names{Prefix: cfg.NamePrefix}
	if err = emulators.CreateTopology(ctx, s.PubSubAddr, cfg.Project, names, fns, report.MaxStages(), cfg.AckDeadline); err != nil {
		return nil, err
	}
	if s.GCS, err = emulators.StartGCS(cfg.GCSHost, cfg.GCSPort, cfg.Bucket); err != nil {
		return nil, err
	}
	s.StorageURL = s.GCS.URL()
	gcsHost := s.StorageURL[len("http://"):]

	common := append([]string{
		"PUBSUB_EMULATOR_HOST=" + s.PubSubAddr,
		"STORAGE_EMULATOR_HOST=" + gcsHost,
		"GOOGLE_CLOUD_PROJECT=" + cfg.Project,
		"REPORT_BUCKET=" + cfg.Bucket,
		"PUBSUB_NAME_PREFIX=" + cfg.NamePrefix,
	}, cfg.Env...)

	var routes []relay.Route
	for _, f := range fns {
		if f.Kind != topology.KindPush {
			continue
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		env := append(append(append([]string{}, common...), "FUNCTION_TARGET="+f.EntryPoint, "PORT="+strconv.Itoa(port)), cfg.EnvFor[f.EntryPoint]...)
		p, err := s.spawn(f.EntryPoint, filepath.Join(cfg.BinDir, FnServer), env)
		if err != nil {
			return nil, err
		}
		if err := waitListening(ctx, p, port); err != nil {
			return nil, err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		s.URLs[f.EntryPoint] = url
		routes = append(routes, relay.Route{Subscription: names.Sub(f.Subscription), URL: url})
	}
	if _, err := s.spawn(Shim, filepath.Join(cfg.BinDir, Shim), append(append([]string{}, common...), cfg.EnvFor[Shim]...)); err != nil {
		return nil, err
	}

	s.Relay = &relay.Relay{Emulator: s.PubSubAddr, Project: cfg.Project, Routes: routes, Backoff: cfg.Backoff,
		Duplicate: cfg.Duplicate, RequestTimeout: 10 * time.Minute, Logger: cfg.Log}
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.Relay.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			cfg.Log.Error("relay stopped", "error", err)
		}
	}()
	return s, nil
}

func (s *Stack) spawn(name, bin string, env []string) (*proc, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t := &tail{max: 64 << 10}
	var out io.Writer = t
	if s.cfg.LogDir != "" {
		f, err := os.Create(filepath.Join(s.cfg.LogDir, name+".log"))
		if err != nil {
			return nil, err
		}
		out = io.MultiWriter(t, f)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: t, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	s.cfg.Log.Info("started", "process", name, "pid", cmd.Process.Pid)
	return p, nil
}

// Logs returns the tail of a process's output, for test failures.
func (s *Stack) Logs(name string) string {
	for _, p := range s.procs {
		if p.name == name {
			return p.log.String()
		}
	}
	return ""
}

// AllLogs returns every process's log tail.
func (s *Stack) AllLogs() string {
	var b bytes.Buffer
	for _, p := range s.procs {
		fmt.Fprintf(&b, "===== %s =====\n%s\n", p.name, p.log.String())
	}
	return b.String()
}

// Close stops the relay, the processes (SIGTERM, then SIGKILL) and the emulators.
func (s *Stack) Close() error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	for _, p := range s.procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range s.procs {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	if s.GCS != nil {
		s.GCS.Stop()
	}
	if s.PubSub != nil {
		s.PubSub.Close()
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(ctx context.Context, p *proc, port int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening:\n%s", p.name, p.log.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not listening on %d after 30s:\n%s", p.name, port, p.log.String())
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
