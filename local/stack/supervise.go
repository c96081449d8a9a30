package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Restart policy of a supervised process, as Cloud Run replaces a crashed
// instance: soon, but without spinning when the process cannot start.
const (
	// minRestartDelay is the wait before the first restart.
	minRestartDelay = 200 * time.Millisecond
	// maxRestartDelay caps the doubling delay of a crash loop. It stays
	// well under the relay's production backoff (60 s), so a message
	// refused while the process was down finds it up on the next attempt.
	maxRestartDelay = 5 * time.Second
	// stableAfter is how long an instance must run for the next restart
	// to start again from minRestartDelay.
	stableAfter = 10 * time.Second
	// readyTimeout bounds how long a function server may take to listen.
	readyTimeout = 30 * time.Second
)

// restartDelay is the wait before restarting a process whose previous
// restart waited prev (0: none yet) and whose last instance ran for uptime.
func restartDelay(prev, uptime time.Duration) time.Duration {
	if prev <= 0 || uptime >= stableAfter {
		return minRestartDelay
	}
	return min(2*prev, maxRestartDelay)
}

// Instance is one run of a supervised process.
type Instance struct {
	PID     int
	Started time.Time
	// Ready is when a function server accepted a TCP connection on its
	// port (DrainTriggers: when it started); zero until then.
	Ready time.Time
	// Exited is when the process ended; zero while it runs.
	Exited time.Time
	// Exit says how it ended, e.g. "signal: killed" or "exit status 1".
	Exit string
}

// ErrNoInstance is returned by WaitReady when the instance asked for
// ended before it was ready, or the stack closed first.
var ErrNoInstance = errors.New("instance not ready")

// proc is one supervised process: a function server on a fixed port, or
// DrainTriggers. Its supervision loop restarts it whenever it exits, until
// stop is called.
type proc struct {
	name   string
	bin    string
	env    []string
	port   int // 0: no port to wait for (DrainTriggers)
	out    io.Writer
	log    *tail // last output of every instance
	logger *slog.Logger

	mu        sync.Mutex
	instances []Instance
	exited    []chan struct{} // closed when instances[i] ends
	cmd       *exec.Cmd       // the running instance, nil between two
	changed   chan struct{}   // closed and replaced on every change
	stopping  bool
	stopCh    chan struct{} // closed by stop
	done      chan struct{} // closed when the supervision loop returns
}

func newProc(name, bin string, env []string, port int, out io.Writer, log *tail, logger *slog.Logger) *proc {
	return &proc{name: name, bin: bin, env: env, port: port, out: out, log: log, logger: logger,
		changed: make(chan struct{}), stopCh: make(chan struct{}), done: make(chan struct{})}
}

// notify wakes every waiter; p.mu must be held.
func (p *proc) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// start runs the first instance and the supervision loop. An error means
// the binary could not be started at all; nothing is left running.
func (p *proc) start() error {
	cmd, n, err := p.spawn()
	if err != nil {
		close(p.done)
		return err
	}
	go p.supervise(cmd, n)
	return nil
}

// spawn starts one instance and its readiness watch.
func (p *proc) spawn() (*exec.Cmd, int, error) {
	cmd := exec.Command(p.bin)
	cmd.Env = append(os.Environ(), p.env...)
	// Its own process group, so Close can signal it without signalling us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return nil, 0, fmt.Errorf("start %s: %w: stack closing", p.name, ErrNoInstance)
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", p.name, err)
	}
	n := len(p.instances)
	inst := Instance{PID: cmd.Process.Pid, Started: time.Now()}
	if p.port == 0 {
		inst.Ready = inst.Started
	}
	p.instances = append(p.instances, inst)
	exited := make(chan struct{})
	p.exited = append(p.exited, exited)
	p.cmd = cmd
	p.notify()
	if p.port != 0 {
		go p.watchReady(n, exited)
	}
	p.logger.Info("started", "process", p.name, "pid", inst.PID, "instance", n)
	return cmd, n, nil
}

// watchReady marks instance n ready once its port accepts a connection.
func (p *proc) watchReady(n int, exited chan struct{}) {
	addr := fmt.Sprintf("127.0.0.1:%d", p.port)
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			p.mu.Lock()
			// The port may still answer from an instance that has just
			// died; only a live instance n is marked.
			select {
			case <-exited:
			default:
				p.instances[n].Ready = time.Now()
				p.notify()
			}
			p.mu.Unlock()
			return
		}
		select {
		case <-exited:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.logger.Warn("process not listening", "process", p.name, "instance", n, "port", p.port, "after", readyTimeout)
}

// supervise waits for each instance to end and starts the next one, until
// stop is called.
func (p *proc) supervise(cmd *exec.Cmd, n int) {
	defer close(p.done)
	var delay time.Duration
	for {
		err := cmd.Wait()
		p.mu.Lock()
		inst := &p.instances[n]
		inst.Exited = time.Now()
		inst.Exit = exitString(err)
		uptime := inst.Exited.Sub(inst.Started)
		close(p.exited[n])
		p.cmd = nil
		stopping := p.stopping
		p.notify()
		p.mu.Unlock()
		if stopping {
			return
		}
		delay = restartDelay(delay, uptime)
		// Beside the operator's log, a line in the process's own log, so
		// its output reads as one story across instances.
		fmt.Fprintf(p.out, "----- stack: %s (pid %d) exited after %s: %s; restarting in %s -----\n",
			p.name, inst.PID, uptime.Round(time.Millisecond), inst.Exit, delay)
		p.logger.Warn("process exited; restarting", "process", p.name, "pid", inst.PID,
			"exit", inst.Exit, "uptime", uptime.Round(time.Millisecond), "restart_in", delay)
		for {
			select {
			case <-p.stopCh:
				return
			case <-time.After(delay):
			}
			var err error
			if cmd, n, err = p.spawn(); err == nil {
				break
			}
			if errors.Is(err, ErrNoInstance) {
				return // stopping
			}
			delay = restartDelay(delay, 0)
			p.logger.Error("restart failed", "process", p.name, "error", err, "retry_in", delay)
		}
	}
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// signal sends sig to the running instance's process group, if any.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// stop ends supervision: no more restarts, and the running instance gets
// SIGTERM. Wait on p.done for it to end.
func (p *proc) stop() {
	p.mu.Lock()
	if !p.stopping {
		p.stopping = true
		close(p.stopCh)
	}
	p.mu.Unlock()
	p.signal(syscall.SIGTERM)
}

// pid is the running instance's process ID, 0 between instances.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) snapshot() []Instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Instance(nil), p.instances...)
}

// waitReady waits until instance n is ready. It fails if that instance
// ends first, if supervision stops before it starts, or if ctx ends.
func (p *proc) waitReady(ctx context.Context, n int) (Instance, error) {
	for {
		p.mu.Lock()
		changed := p.changed
		var inst Instance
		have := n < len(p.instances)
		if have {
			inst = p.instances[n]
		}
		stopping := p.stopping
		p.mu.Unlock()
		switch {
		case have && !inst.Ready.IsZero():
			return inst, nil
		case have && !inst.Exited.IsZero():
			return inst, fmt.Errorf("%s instance %d (pid %d) %w: %s before it was ready", p.name, n, inst.PID, ErrNoInstance, inst.Exit)
		case !have && stopping:
			return inst, fmt.Errorf("%s instance %d %w: stack closing", p.name, n, ErrNoInstance)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return inst, fmt.Errorf("%s instance %d: %w", p.name, n, ctx.Err())
		}
	}
}

// waitUp waits until some instance is running and ready: what Cloud Run
// does with a request that arrives while it replaces a crashed instance.
func (p *proc) waitUp(ctx context.Context) error {
	for {
		p.mu.Lock()
		changed := p.changed
		up := p.cmd != nil && !p.instances[len(p.instances)-1].Ready.IsZero()
		stopping := p.stopping
		p.mu.Unlock()
		if up {
			return nil
		}
		if stopping {
			return fmt.Errorf("%s: %w: stack closing", p.name, ErrNoInstance)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to be up: %w", p.name, ctx.Err())
		}
	}
}
