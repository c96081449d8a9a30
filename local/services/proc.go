package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a started server (or daemonizing launcher) process.
type proc struct {
	args []string
	// daemonizes means the command forks the real server and exits 0.
	daemonizes bool
	done       chan struct{} // closed when the process has exited
	err        error         // Wait's result, set before done is closed
	pid        int
	stopOnce   sync.Once
	stopErr    error
}

// startProc starts args in the background with stdout and stderr appended
// to outPath. detach puts it in a new session (system daemons outliving
// the command, immune to the terminal's signals); otherwise it gets its own
// process group so that stopGroup can end it and all its children.
func startProc(lg *slog.Logger, args, env []string, dir, outPath string, detach, daemonizes bool) (*proc, error) {
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child keeps its own copy
	// Not CommandContext: ctx ends when Ensure returns, the server must not.
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	lg.Info("starting", "cmd", shellJoin(args), "output", outPath)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", shellJoin(args), err)
	}
	p := &proc{args: args, daemonizes: daemonizes, done: make(chan struct{}), pid: cmd.Process.Pid}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stopGroup sends SIGTERM to p's process group, then SIGKILL after grace,
// and waits for p to exit. Repeated calls return the first result.
func (p *proc) stopGroup(grace time.Duration) error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return // already gone; its group may still hold children
		default:
		}
		_ = syscall.Kill(-p.pid, syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		select {
		case <-p.done:
			p.stopErr = fmt.Errorf("%s did not stop within %v after SIGTERM; killed it", p.args[0], grace)
		case <-time.After(10 * time.Second):
			p.stopErr = fmt.Errorf("%s (pid %d) did not exit even after SIGKILL", p.args[0], p.pid)
		}
	})
	return p.stopErr
}

// startFailure describes a server that did not become usable: what was run
// and the end of its log files.
func startFailure(err error, args []string, logs ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%v\nran: %s", err, shellJoin(args))
	for _, l := range logs {
		t, rerr := tailFile(l, 20)
		switch {
		case rerr != nil:
			fmt.Fprintf(&b, "\n(no log %s: %v)", l, rerr)
		case t == "":
			fmt.Fprintf(&b, "\n(log %s is empty)", l)
		default:
			fmt.Fprintf(&b, "\n--- last lines of %s ---\n%s", l, t)
		}
	}
	return errors.New(b.String())
}

// tailFile returns up to n last lines of the file at path.
func tailFile(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	const maxTail = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxTail {
		if _, err := f.Seek(st.Size()-maxTail, 0); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return "", err
	}
	return tailLines(buf.String(), n), nil
}

// tailLines returns the last n lines of s without the final newline.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// headTail returns the first and last n lines of s; errors show up at
// either end (mariadb-install-db prints its cause first, apt-get last).
func headTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= 2*n {
		return strings.Join(lines, "\n")
	}
	return strings.Join(lines[:n], "\n") + "\n[...]\n" + strings.Join(lines[len(lines)-n:], "\n")
}

// runQuiet runs a short command; on failure the error holds the end of its
// output, which is otherwise dropped.
func runQuiet(ctx context.Context, lg *slog.Logger, args, env []string) error {
	lg.Info("running", "cmd", shellJoin(args))
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", shellJoin(args), err, headTail(string(out), 15))
	}
	return nil
}

// asRoot prefixes args with sudo when euid is not root's.
func asRoot(euid int, args ...string) []string {
	if euid == 0 {
		return args
	}
	return append([]string{"sudo"}, args...)
}

// shellJoin quotes args the way a shell user would type them, for messages.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,@+%") == "" {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// lookBinary finds name in PATH or, as PATH often lacks the sbin
// directories for non-root users, in the usual Debian directories.
func lookBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or /usr/sbin", name)
}

// withEnv returns the current environment without variables whose names
// start with one of dropPrefixes, followed by extra.
func withEnv(dropPrefixes []string, extra ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, p := range dropPrefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// systemOutFile returns path, or for non-root users (who start system
// daemons through sudo but cannot write to /var/log) a file in the temp dir.
func systemOutFile(euid int, path string) string {
	if euid == 0 {
		return path
	}
	return filepath.Join(os.TempDir(), filepath.Base(path))
}
