// Command services makes sure the local MariaDB, Redis and RabbitMQ servers
// that `make demo` and `make test` need are running, or reports on them.
//
//	go run ./local/cmd/services ensure [flags]  # start what is not running
//	go run ./local/cmd/services check [flags]   # only report
//
// Servers started by ensure are system daemons left running after the
// command exits. Both commands exit non-zero if a server is not usable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/fanoutexport/fanoutexport/local/services"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed command line.
type options struct {
	command string
	servers []services.Server
	timeout time.Duration
}

// parseArgs accepts flags before and after the command name.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("services", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: services ensure|check [flags]")
		fs.PrintDefaults()
	}
	ports := map[services.Kind]*int{}
	for _, s := range services.Defaults() {
		ports[s.Kind] = fs.Int(string(s.Kind)+"-port", s.Port, "TCP port of "+string(s.Kind)+" on 127.0.0.1")
	}
	timeout := fs.Duration("timeout", 15*time.Minute, "overall time limit, including apt-get")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	var o options
	if fs.NArg() > 0 {
		o.command = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return options{}, err
		}
	}
	switch {
	case o.command != "ensure" && o.command != "check":
		fs.Usage()
		return options{}, fmt.Errorf("want command ensure or check, got %q", o.command)
	case fs.NArg() > 0:
		fs.Usage()
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range services.Defaults() {
		s.Port = *ports[s.Kind]
		o.servers = append(o.servers, s)
	}
	o.timeout = *timeout
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "services:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	// One goroutine per server: RabbitMQ's slow start overlaps the others.
	// Results are printed in a fixed order.
	lines := make([]string, len(o.servers))
	failed := make([]bool, len(o.servers))
	log := &lockedWriter{w: stderr}
	var wg sync.WaitGroup
	for i, s := range o.servers {
		wg.Go(func() {
			if o.command == "check" {
				lines[i], failed[i] = check(ctx, s)
			} else {
				lines[i], failed[i] = ensure(ctx, s, log)
			}
		})
	}
	wg.Wait()
	code := 0
	for i, l := range lines {
		if failed[i] {
			code = 1
			fmt.Fprintln(stderr, l)
			continue
		}
		fmt.Fprintln(stdout, l)
	}
	return code
}

func ensure(ctx context.Context, s services.Server, log io.Writer) (line string, failed bool) {
	begin := time.Now()
	_, started, err := services.Ensure(ctx, s, log)
	switch {
	case err != nil:
		return fmt.Sprintf("%v: FAILED: %v", s, err), true
	case started:
		return fmt.Sprintf("%v: started (ready after %v, left running in the background)", s, time.Since(begin).Round(100*time.Millisecond)), false
	default:
		return fmt.Sprintf("%v: already running", s), false
	}
}

func check(ctx context.Context, s services.Server) (line string, failed bool) {
	if !services.Running(s) {
		return fmt.Sprintf("%v: not running", s), true
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := services.Ready(ctx, s); err != nil {
		return fmt.Sprintf("%v: running but not usable: %v", s, err), true
	}
	return fmt.Sprintf("%v: running and usable", s), false
}

// lockedWriter serializes the progress logs of the concurrent Ensure calls.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
