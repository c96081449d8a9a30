package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fanoutexport/fanoutexport/local/services"
	"github.com/google/go-cmp/cmp"
)

// helperEnv makes the test binary play a supervised process: "listen"
// serves HTTP on $PORT until killed, "exit" exits at once with status 3.
const helperEnv = "STACK_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "listen":
		err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, os.Getpid())
		}))
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case "exit":
		os.Exit(3)
	}
}

func TestRestartDelay(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name         string
		prev, uptime time.Duration
		want         time.Duration
	}{
		{"first restart", 0, time.Millisecond, minRestartDelay},
		{"first restart after a long run", 0, time.Hour, minRestartDelay},
		{"crash loop doubles", 200 * time.Millisecond, 50 * time.Millisecond, 400 * time.Millisecond},
		{"crash loop doubles again", 1600 * time.Millisecond, time.Second, 3200 * time.Millisecond},
		{"capped", 3200 * time.Millisecond, time.Second, maxRestartDelay},
		{"stays capped", maxRestartDelay, time.Second, maxRestartDelay},
		{"reset after a stable run", maxRestartDelay, stableAfter, minRestartDelay},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := restartDelay(c.prev, c.uptime); got != c.want {
				t.Errorf("restartDelay(%v, %v) = %v, want %v", c.prev, c.uptime, got, c.want)
			}
		})
	}
}

// helper starts the test binary as a supervised process in mode.
func helper(t *testing.T, mode string) *proc {
	t.Helper()
	port, err := services.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if mode == "exit" {
		port = 0
	}
	lt := &tail{max: 64 << 10}
	p := newProc("helper-"+mode, os.Args[0], []string{helperEnv + "=" + mode, "PORT=" + strconv.Itoa(port)}, port,
		lt, lt, slog.New(slog.DiscardHandler))
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.signal(syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// get asks the helper on p's port for its PID.
func get(t *testing.T, p *proc) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", p.port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatalf("helper answered %q", b)
	}
	return pid
}

// A process killed with SIGKILL comes back as a new process on the same
// port, and the kill is recorded.
func TestSIGKILLRestartsOnSamePort(t *testing.T) {
	t.Parallel()
	p := helper(t, "listen")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	first, err := p.waitReady(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, p); got != first.PID || p.pid() != first.PID {
		t.Fatalf("port answered by pid %d, pid() %d, instance 0 is %d", got, p.pid(), first.PID)
	}
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second, err := p.waitReady(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if second.PID == first.PID {
		t.Fatalf("instance 1 has the killed pid %d", first.PID)
	}
	if got := get(t, p); got != second.PID {
		t.Errorf("port answered by pid %d, want the new instance %d", got, second.PID)
	}
	insts := p.snapshot()
	if len(insts) != 2 {
		t.Fatalf("%d instances, want 2", len(insts))
	}
	if insts[0].Exit != "signal: killed" || insts[0].Exited.IsZero() {
		t.Errorf("instance 0 ended %q at %v, want signal: killed", insts[0].Exit, insts[0].Exited)
	}
	if gap := insts[1].Started.Sub(insts[0].Exited); gap < minRestartDelay {
		t.Errorf("restarted %v after the exit, want the %v backoff first", gap, minRestartDelay)
	}
	if !strings.Contains(p.log.String(), "exited after") {
		t.Errorf("the process log does not record the restart:\n%s", p.log.String())
	}
}

// A process that cannot start is retried with a doubling delay, and is
// never reported ready.
func TestCrashLoopBacksOff(t *testing.T) {
	t.Parallel()
	p := helper(t, "exit")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Without a port, an instance is ready when started. Instance 2
	// starts after two restart delays: 200 ms, then 400 ms.
	if _, err := p.waitReady(ctx, 2); err != nil {
		t.Fatal(err)
	}
	insts := p.snapshot()
	if len(insts) < 3 {
		t.Fatalf("%d instances, want at least 3", len(insts))
	}
	for i, want := range []time.Duration{minRestartDelay, 2 * minRestartDelay} {
		if insts[i].Exit != "exit status 3" {
			t.Errorf("instance %d ended %q, want exit status 3", i, insts[i].Exit)
		}
		if gap := insts[i+1].Started.Sub(insts[i].Exited); gap < want {
			t.Errorf("instance %d started %v after instance %d ended, want at least %v", i+1, gap, i, want)
		}
	}
}

// An instance that exits before it listens is reported as such to a
// waiter, not as ready.
func TestExitBeforeReady(t *testing.T) {
	t.Parallel()
	port, err := services.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	lt := &tail{max: 4096}
	p := newProc("exits", os.Args[0], []string{helperEnv + "=exit"}, port, lt, lt, slog.New(slog.DiscardHandler))
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	defer func() { p.stop(); <-p.done }()
	_, err = p.waitReady(t.Context(), 0)
	if !errors.Is(err, ErrNoInstance) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("waitReady = %v, want ErrNoInstance naming exit status 3", err)
	}
}

// stop ends the process and supervision: nothing is restarted.
func TestStopDoesNotRestart(t *testing.T) {
	t.Parallel()
	p := helper(t, "listen")
	if _, err := p.waitReady(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	p.stop()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("supervision still running 10 s after stop")
	}
	insts := p.snapshot()
	want := []string{"signal: terminated"}
	var got []string
	for _, in := range insts {
		got = append(got, in.Exit)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("instances' exits (-want +got):\n%s", d)
	}
	if p.pid() != 0 {
		t.Errorf("pid() = %d after stop, want 0", p.pid())
	}
	if _, err := p.waitReady(t.Context(), 1); !errors.Is(err, ErrNoInstance) {
		t.Errorf("waitReady(1) after stop = %v, want ErrNoInstance", err)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.port), time.Second); err == nil {
		c.Close()
		t.Error("port still answers after stop")
	}
}
