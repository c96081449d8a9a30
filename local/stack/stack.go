// Package stack runs the whole system on one machine: the Pub/Sub and
// Cloud Storage emulators in-process, each function in its own
// functions-framework process (as in production, picked by
// FUNCTION_TARGET), the push relay, and DrainTriggers consuming
// continuously, and the Sweep function called every few seconds, as Cloud
// Scheduler calls it. MariaDB, Redis and RabbitMQ are the real servers.
//
// Every process is supervised as Cloud Run supervises an instance: one
// that exits for any reason other than Close is restarted after a short
// backoff (logged, 200 ms doubling to 5 s, back to 200 ms once an
// instance stayed up 10 s), on the same port. A push in flight when a
// function died fails at the relay and is redelivered after the relay's
// backoff, counting as a delivery attempt; pushes that arrive while it is
// down wait for the new instance (up to relay.ColdStartWait), as Cloud
// Run holds requests during a cold start. PID, Instances and WaitReady let
// a test kill a process for real and watch it come back.
package stack

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/fanoutexport/fanoutexport/local/services"
	"github.com/fanoutexport/fanoutexport/local/signing"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Binaries built by Build.
const (
	FnServer      = "fnserver"
	DrainTriggers = "draintriggers"
)

// Sweep names the process serving the Sweep function (a FnServer with
// FUNCTION_TARGET=Sweep), which the stack calls every Config.SweepEvery as
// Cloud Scheduler does in production; its log is sweep.log.
const Sweep = "sweep"

// Build compiles the function server and DrainTriggers into dir.
func Build(ctx context.Context, moduleRoot, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "./local/cmd/fnserver", "./local/cmd/draintriggers")
	cmd.Dir = moduleRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// Config says how to run the stack.
type Config struct {
	BinDir      string // holds FnServer and DrainTriggers
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
	// EnvFor is added to one entry point's process (or DrainTriggers, or Sweep).
	EnvFor map[string][]string
	// SweepEvery is how often the stack calls the Sweep function;
	// 0 means DefaultSweepEvery. Its limits are the process's
	// SWEEP_PENDING_AFTER and SWEEP_PROCESSING_AFTER (Env or EnvFor[Sweep]).
	SweepEvery time.Duration
	// OnSweep, if set, sees every run of the Sweep function as it ends.
	OnSweep func(SweepRun)
	// LogDir gets one log file per process; "" discards their output.
	LogDir string
	Log    *slog.Logger
	// Observe, if set, sees every push the relay makes (relay.Relay.Observe).
	Observe func(relay.Delivery)
	// Concurrency is the relay's pushes in flight per subscription (0:
	// the relay's default, 8). 1 serves each function one request at a
	// time, as production's instances are (request concurrency 1).
	Concurrency int
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
	// SweepURL is the Sweep function's server, which the stack calls
	// every Config.SweepEvery.
	SweepURL string
	// SigningKey verifies the download URLs the processes sign with the
	// stack's key (SIGNED_URL_KEY_FILE; they sign only with SIGNED_URL_TTL set).
	SigningKey *rsa.PublicKey
	keyDir     string

	procs  []*proc
	sweeps sweeps
	files  []*os.File
	cancel context.CancelFunc
	wg     sync.WaitGroup
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
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	s := &Stack{cfg: cfg, URLs: map[string]string{}, sweeps: sweeps{changed: make(chan struct{})}}
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
	// A key of the stack's own stands in for the functions' identity,
	// which signs download URLs through IAM in production.
	if s.keyDir, err = os.MkdirTemp("", "stack-key-"); err != nil {
		return nil, err
	}
	key, keyFile, err := signing.NewSigningKey(s.keyDir)
	if err != nil {
		return nil, err
	}
	s.SigningKey = &key.PublicKey

	common := append([]string{
		"PUBSUB_EMULATOR_HOST=" + s.PubSubAddr,
		"STORAGE_EMULATOR_HOST=" + gcsHost,
		"GOOGLE_CLOUD_PROJECT=" + cfg.Project,
		"REPORT_BUCKET=" + cfg.Bucket,
		"PUBSUB_NAME_PREFIX=" + cfg.NamePrefix,
		"SIGNED_URL_KEY_FILE=" + keyFile,
		"SIGNED_URL_ACCESS_ID=" + signing.SigningAccessID,
	}, cfg.Env...)

	var routes []relay.Route
	for _, f := range fns {
		if f.Kind != topology.KindPush {
			continue
		}
		port, err := services.FreePort()
		if err != nil {
			return nil, err
		}
		env := append(append(append([]string{}, common...), "FUNCTION_TARGET="+f.EntryPoint, "PORT="+strconv.Itoa(port)), cfg.EnvFor[f.EntryPoint]...)
		p, err := s.spawn(f.EntryPoint, filepath.Join(cfg.BinDir, FnServer), env, port)
		if err != nil {
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		_, err = p.waitReady(rctx, 0)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w\n%s", err, p.log.String())
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		s.URLs[f.EntryPoint] = url
		routes = append(routes, relay.Route{Subscription: names.Sub(f.Subscription), URL: url, Ready: p.waitUp})
	}
	if _, err := s.spawn(DrainTriggers, filepath.Join(cfg.BinDir, DrainTriggers), append(append([]string{}, common...), cfg.EnvFor[DrainTriggers]...), 0); err != nil {
		return nil, err
	}
	// The sweeper runs as the deployed Sweep function does, the same entry
	// point in its own supervised server, so it loads config.Sweep from
	// its own environment and a test can give it short limits.
	sweepPort, err := services.FreePort()
	if err != nil {
		return nil, err
	}
	sweepProc, err := s.spawn(Sweep, filepath.Join(cfg.BinDir, FnServer), append(append(append([]string{}, common...),
		"FUNCTION_TARGET="+topology.EntrySweep, "PORT="+strconv.Itoa(sweepPort)), cfg.EnvFor[Sweep]...), sweepPort)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, readyTimeout)
	_, err = sweepProc.waitReady(sctx, 0)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, sweepProc.log.String())
	}
	s.SweepURL = fmt.Sprintf("http://127.0.0.1:%d/", sweepPort)

	s.Relay = &relay.Relay{Emulator: s.PubSubAddr, Project: cfg.Project, Routes: routes, Backoff: cfg.Backoff,
		Duplicate: cfg.Duplicate, RequestTimeout: 10 * time.Minute, Logger: cfg.Log, Observe: cfg.Observe,
		Concurrency: cfg.Concurrency}
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.Relay.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			cfg.Log.Error("relay stopped", "error", err)
		}
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.schedule(rctx, sweepProc, s.SweepURL, cfg.SweepEvery)
	}()
	return s, nil
}

// spawn starts a supervised process: it is restarted whenever it exits
// until Close. A function server keeps its port across restarts, so the
// relay's URLs stay valid.
func (s *Stack) spawn(name, bin string, env []string, port int) (*proc, error) {
	t := &tail{max: 64 << 10}
	var out io.Writer = t
	if s.cfg.LogDir != "" {
		f, err := os.Create(filepath.Join(s.cfg.LogDir, name+".log"))
		if err != nil {
			return nil, err
		}
		s.files = append(s.files, f)
		out = io.MultiWriter(t, f)
	}
	p := newProc(name, bin, env, port, out, t, s.cfg.Log)
	if err := p.start(); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return p, nil
}

func (s *Stack) proc(name string) *proc {
	for _, p := range s.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// Processes names the stack's processes: the push functions' entry points,
// DrainTriggers and Sweep.
func (s *Stack) Processes() []string {
	names := make([]string, len(s.procs))
	for i, p := range s.procs {
		names[i] = p.name
	}
	return names
}

// PID returns the process ID of name's running instance, or 0 while it is
// down (or if the stack has no such process). Tests kill it to play a
// crashed instance.
func (s *Stack) PID(name string) int {
	if p := s.proc(name); p != nil {
		return p.pid()
	}
	return 0
}

// Restarts counts how many times name has been restarted.
func (s *Stack) Restarts(name string) int {
	if p := s.proc(name); p != nil {
		return max(len(p.snapshot())-1, 0)
	}
	return 0
}

// Instances returns every run of name so far, the first start first.
func (s *Stack) Instances(name string) []Instance {
	if p := s.proc(name); p != nil {
		return p.snapshot()
	}
	return nil
}

// WaitReady waits until instance n of name (0 the first start, n after the
// n-th restart) is ready: a function server listening, DrainTriggers started.
// It returns an error wrapping ErrNoInstance if that instance ends before
// it is ready or the stack closes first.
func (s *Stack) WaitReady(ctx context.Context, name string, n int) (Instance, error) {
	p := s.proc(name)
	if p == nil {
		return Instance{}, fmt.Errorf("no process %q", name)
	}
	return p.waitReady(ctx, n)
}

// Logs returns the tail of a process's output (across its restarts), for
// test failures.
func (s *Stack) Logs(name string) string {
	if p := s.proc(name); p != nil {
		return p.log.String()
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

// Close stops the relay, then the processes (no more restarts; SIGTERM,
// then SIGKILL after 5 s), then the emulators.
func (s *Stack) Close() error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	for _, p := range s.procs {
		p.stop()
	}
	for _, p := range s.procs {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.signal(syscall.SIGKILL)
			<-p.done
		}
	}
	for _, f := range s.files {
		f.Close()
	}
	if s.GCS != nil {
		s.GCS.Stop()
	}
	if s.PubSub != nil {
		s.PubSub.Close()
	}
	if s.keyDir != "" {
		os.RemoveAll(s.keyDir)
	}
	return nil
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
