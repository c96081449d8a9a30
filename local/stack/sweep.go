package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/stuck"
)

// DefaultSweepEvery is how often the local stack calls the Sweep function
// when Config.SweepEvery is 0. Production calls it every 5 minutes; the
// sweeper's own limits are at least a minute, so a few seconds here only
// makes a stuck record end sooner after it passes them.
const DefaultSweepEvery = 10 * time.Second

// sweepTimeout bounds one call, as the function's timeout does in
// production (terraform: sweep_timeout_seconds).
const sweepTimeout = 5 * time.Minute

// SweepRun is one call of the Sweep function by the stack's scheduler.
type SweepRun struct {
	Started, Ended time.Time
	// Status is the HTTP status answered; 0 if the call got no answer.
	Status int
	// Result is what the sweep did, as the function reported it.
	Result stuck.Result
	// Err is the sweep's error, or why the call failed; "" on success.
	Err string
}

// sweeps keeps the scheduler's runs for Sweeps and WaitSweeps.
type sweeps struct {
	mu      sync.Mutex
	runs    []SweepRun
	changed chan struct{} // closed and replaced on every run
}

func (w *sweeps) add(r SweepRun) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runs = append(w.runs, r)
	close(w.changed)
	w.changed = make(chan struct{})
}

// Sweeps returns the Sweep function's runs so far, oldest first.
func (s *Stack) Sweeps() []SweepRun {
	s.sweeps.mu.Lock()
	defer s.sweeps.mu.Unlock()
	return slices.Clone(s.sweeps.runs)
}

// WaitSweeps waits until at least n runs of the Sweep function have ended
// and returns them all, oldest first.
func (s *Stack) WaitSweeps(ctx context.Context, n int) ([]SweepRun, error) {
	for {
		s.sweeps.mu.Lock()
		runs, changed := s.sweeps.runs, s.sweeps.changed
		s.sweeps.mu.Unlock()
		if len(runs) >= n {
			return slices.Clone(runs), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return slices.Clone(runs), fmt.Errorf("waiting for sweep run %d (%d so far): %w", n, len(runs), ctx.Err())
		}
	}
}

// schedule calls the Sweep function at url every interval until ctx ends,
// as Cloud Scheduler does in production: one call at a time, the first at
// once. Each run is logged to the sweep process's own log (sweep.log).
func (s *Stack) schedule(ctx context.Context, p *proc, url string, every time.Duration) {
	log := logging.New(p.out, slog.LevelInfo).With("process", Sweep)
	client := &http.Client{Timeout: sweepTimeout}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		run := callSweep(ctx, client, p, url, every)
		if ctx.Err() != nil {
			return // the stack is closing: not a run
		}
		s.sweeps.add(run)
		if s.cfg.OnSweep != nil {
			s.cfg.OnSweep(run)
		}
		attrs := []any{"status", run.Status, "republished", run.Result.Republished, "lost", run.Result.Lost,
			"timedOut", run.Result.TimedOut, "took", run.Ended.Sub(run.Started).Round(time.Millisecond).String()}
		switch {
		case run.Err != "":
			log.Error("sweep run failed", append(attrs, "error", run.Err)...)
			s.cfg.Log.Warn("sweep run failed", "error", run.Err)
		case len(run.Result.Republished)+len(run.Result.Lost)+len(run.Result.TimedOut) > 0:
			log.Info("sweep run", attrs...)
		default:
			log.Debug("sweep run", attrs...)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// callSweep makes one call. A function instance being replaced is waited
// for (up to one interval), as Cloud Run holds a request during a cold
// start.
func callSweep(ctx context.Context, client *http.Client, p *proc, url string, every time.Duration) (run SweepRun) {
	run.Started = time.Now()
	defer func() { run.Ended = time.Now() }()
	upCtx, cancel := context.WithTimeout(ctx, every)
	err := p.waitUp(upCtx)
	cancel()
	if err != nil {
		run.Err = err.Error()
		return run
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		run.Err = err.Error()
		return run
	}
	resp, err := client.Do(req)
	if err != nil {
		run.Err = fmt.Sprintf("POST %s: %v", url, err)
		return run
	}
	defer resp.Body.Close()
	run.Status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		run.Err = fmt.Sprintf("POST %s: reading the answer: %v", url, err)
		return run
	}
	var answer struct {
		stuck.Result
		Error string `json:"error"`
	}
	// A refused call (409 from an instance already sweeping, a 500 before
	// the sweep began) answers plain text, not JSON.
	if jerr := json.Unmarshal(body, &answer); jerr != nil && resp.StatusCode == http.StatusOK {
		run.Err = fmt.Sprintf("POST %s: answer is not JSON: %v: %q", url, jerr, body)
		return run
	}
	run.Result = answer.Result
	if resp.StatusCode != http.StatusOK {
		run.Err = answer.Error
		if run.Err == "" {
			run.Err = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
	}
	return run
}
