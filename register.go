// Package fanoutexport registers every Cloud Function entry point. The Go
// buildpack builds the package at the module root, so this one file is all
// that lives here; the same source is deployed once per entry point.
// Nothing here creates a client: every init runs in every function.
//
// It is also where the process hears SIGTERM (how Cloud Run stops an
// instance): the buildpack's generated main only imports this package and
// calls funcframework.Start, which handles no signal, and Go's default for
// SIGTERM is to exit at once, losing the spans the tracer still batches.
package fanoutexport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/fanoutexport/fanoutexport/functions/aggregate"
	"github.com/fanoutexport/fanoutexport/functions/deadletter"
	"github.com/fanoutexport/fanoutexport/functions/draintriggers"
	"github.com/fanoutexport/fanoutexport/functions/listen"
	"github.com/fanoutexport/fanoutexport/functions/sweep"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
	"github.com/fanoutexport/fanoutexport/shared/tracing"
)

// ShutdownTimeout bounds what the process does on SIGTERM: Cloud Run
// kills an instance 10 s after sending it.
const ShutdownTimeout = 8 * time.Second

// handler is an entry point's HTTP handler; Close closes the clients it
// made, if any.
type handler interface {
	http.Handler
	Close() error
}

var (
	entryPoints []string
	handlers    []handler
)

func init() {
	for _, f := range topology.Functions() {
		h := newHandler(f)
		functions.HTTP(f.EntryPoint, h.ServeHTTP)
		entryPoints = append(entryPoints, f.EntryPoint)
		handlers = append(handlers, h)
	}
	// Installing a handler creates nothing; it only replaces the default
	// exit. One owner: local/cmd/fnserver leaves SIGTERM to this.
	sigterm := make(chan os.Signal, 1)
	signal.Notify(sigterm, syscall.SIGTERM)
	go func() {
		<-sigterm
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		if err := Shutdown(ctx); err != nil {
			slog.Error("shutting down on SIGTERM", "error", err)
		}
		os.Exit(0)
	}()
}

func newHandler(f topology.Function) handler {
	switch f.EntryPoint {
	case topology.EntryDrainTriggers:
		return draintriggers.New()
	case topology.EntryAggregate:
		return aggregate.New()
	case topology.EntryDeadLetter:
		return deadletter.New()
	case topology.EntrySweep:
		return sweep.New()
	}
	if s, ok := report.SourceByEntryPoint(f.EntryPoint); ok {
		return listen.New(s)
	}
	panic(fmt.Sprintf("fanoutexport: no handler for entry point %s", f.EntryPoint))
}

// EntryPoints lists what init registered, for the deployment checks.
func EntryPoints() []string { return append([]string(nil), entryPoints...) }

// Shutdown flushes the spans the process still holds and closes every
// client any entry point made, within ctx: what the process does when it
// is told to stop.
func Shutdown(ctx context.Context) error {
	closed := make(chan error, 1)
	go func() {
		var errs []error
		for _, h := range handlers {
			errs = append(errs, h.Close())
		}
		closed <- errors.Join(errs...)
	}()
	err := tracing.Shutdown(ctx)
	select {
	case cerr := <-closed:
		return errors.Join(err, cerr)
	case <-ctx.Done():
		return errors.Join(err, fmt.Errorf("closing the functions' clients: %w", ctx.Err()))
	}
}
