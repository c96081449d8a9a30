// Package fanoutexport registers every Cloud Function entry point. The Go
// buildpack builds the package at the module root, so this one file is all
// that lives here; the same source is deployed once per entry point.
// Nothing here creates a client: every init runs in every function.
package fanoutexport

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/fanoutexport/fanoutexport/functions/aggregator"
	"github.com/fanoutexport/fanoutexport/functions/dlq"
	"github.com/fanoutexport/fanoutexport/functions/listener"
	"github.com/fanoutexport/fanoutexport/functions/shim"
	"github.com/fanoutexport/fanoutexport/functions/sweep"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

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
}

func newHandler(f topology.Function) handler {
	switch f.EntryPoint {
	case topology.EntryDrainTriggers:
		return shim.New()
	case topology.EntryAggregate:
		return aggregator.New()
	case topology.EntryDeadLetter:
		return dlq.New()
	case topology.EntrySweep:
		return sweep.New()
	}
	if s, ok := report.SourceByEntryPoint(f.EntryPoint); ok {
		return listener.New(s)
	}
	panic(fmt.Sprintf("fanoutexport: no handler for entry point %s", f.EntryPoint))
}

// EntryPoints lists what init registered, for the deployment checks.
func EntryPoints() []string { return append([]string(nil), entryPoints...) }

// Close closes every client any entry point made, for a server shutting
// down (SIGTERM).
func Close() error {
	var errs []error
	for _, h := range handlers {
		errs = append(errs, h.Close())
	}
	return errors.Join(errs...)
}
