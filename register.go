// Package fanoutexport registers every Cloud Function entry point. The Go
// buildpack builds the package at the module root, so this one file is all
// that lives here; the same source is deployed once per entry point.
// Nothing here creates a client: every init runs in every function.
package fanoutexport

import (
	"fmt"
	"net/http"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/fanoutexport/fanoutexport/functions/aggregator"
	"github.com/fanoutexport/fanoutexport/functions/dlq"
	"github.com/fanoutexport/fanoutexport/functions/listener"
	"github.com/fanoutexport/fanoutexport/functions/shim"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

var entryPoints []string

func init() {
	for _, f := range report.Functions() {
		functions.HTTP(f.EntryPoint, handler(f).ServeHTTP)
		entryPoints = append(entryPoints, f.EntryPoint)
	}
}

func handler(f topology.Function) http.Handler {
	switch f.EntryPoint {
	case topology.EntryDrainTriggers:
		return shim.New()
	case topology.EntryAggregate:
		return aggregator.New()
	case topology.EntryDeadLetter:
		return dlq.New()
	}
	if s, ok := report.SourceByEntryPoint(f.EntryPoint); ok {
		return listener.New(s)
	}
	panic(fmt.Sprintf("fanoutexport: no handler for entry point %s", f.EntryPoint))
}

// EntryPoints lists what init registered, for the deployment checks.
func EntryPoints() []string { return append([]string(nil), entryPoints...) }
