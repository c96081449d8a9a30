// Package tracing carries one W3C trace through every hop of a report: DrainTriggers
//
//	takes it from the trigger's AMQP headers (or starts it), Pub/Sub
//
// messages carry it in their attributes (traceparent, tracestate), each
// handler runs in a span of it with child spans for its steps, and log
// lines name it (logging.googleapis.com/trace and spanId), so Cloud
// Logging groups a report's lines under its trace. Spans are exported to
// Cloud Trace in production (TRACE_EXPORTER=gcp), to stdout or nowhere
// locally.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	texporter "github.com/GoogleCloudPlatform/opentelemetry-operations-go/exporter/trace"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanoutexport/fanoutexport/shared/logging"
)

// Exporters TRACE_EXPORTER names.
const (
	ExporterNone   = "none"
	ExporterStdout = "stdout"
	ExporterGCP    = "gcp"
)

// propagator is W3C trace context, the format every hop carries.
var propagator = propagation.TraceContext{}

// tracer makes the project's spans; with no provider set it makes spans
// that still carry (and propagate) a trace ID but export nothing.
func tracer() trace.Tracer {
	return otel.GetTracerProvider().Tracer("github.com/fanoutexport/fanoutexport")
}

// process is the process's tracer provider: one per process, whatever
// number of functions' environments it builds, so no environment replaces
// or shuts down another's, and spans are flushed once, when the process
// stops (Shutdown).
var process struct {
	mu       sync.Mutex
	tp       *sdktrace.TracerProvider
	exporter string
}

// Setup installs the process's tracer provider for exporter, unless one is
// installed already: every function environment calls it, and the first
// call wins. A later call naming another exporter is an error (one
// process reads one TRACE_EXPORTER). "none" still samples and propagates,
// so log lines carry a trace ID locally too; it only exports nothing. The
// exporter keeps ctx (the Cloud Trace one dials and refreshes credentials
// with it), so ctx must outlive the process's requests.
func Setup(ctx context.Context, exporter, project string) error {
	if exporter == "" {
		exporter = ExporterNone
	}
	process.mu.Lock()
	installed, tp := process.exporter, process.tp
	process.mu.Unlock()
	if tp != nil {
		return sameExporter(installed, exporter)
	}
	// Built without the lock: a Cloud Trace exporter that hangs (a stuck
	// metadata server) must not hold the next environment's Setup.
	tp, err := newProvider(ctx, exporter, project)
	if err != nil {
		return err
	}
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.tp != nil {
		// Another environment installed one meanwhile: keep it.
		return errors.Join(sameExporter(process.exporter, exporter), tp.Shutdown(ctx))
	}
	process.tp, process.exporter = tp, exporter
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	return nil
}

func sameExporter(installed, exporter string) error {
	if installed != exporter {
		return fmt.Errorf("TRACE_EXPORTER %q: this process already exports its spans to %q", exporter, installed)
	}
	return nil
}

func newProvider(ctx context.Context, exporter, project string) (*sdktrace.TracerProvider, error) {
	var opts []sdktrace.TracerProviderOption
	switch exporter {
	case ExporterNone:
	case ExporterStdout:
		e, err := stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
		if err != nil {
			return nil, fmt.Errorf("stdouttrace.New: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(e))
	case ExporterGCP:
		e, err := texporter.New(texporter.WithProjectID(project), texporter.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("cloud trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(e))
	default:
		return nil, fmt.Errorf("TRACE_EXPORTER %q: want none, stdout or gcp", exporter)
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// Shutdown exports the spans the process's provider still holds (the
// batcher sends every 5 s) and stops it, within ctx: what a process does
// when it is told to stop (SIGTERM), or they are lost. Spans started
// after it export nothing; a later Setup installs a new provider. Without
// a provider it does nothing.
func Shutdown(ctx context.Context) error {
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.tp == nil {
		return nil
	}
	tp := process.tp
	process.tp, process.exporter = nil, ""
	if err := tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("flushing the process's spans: %w", err)
	}
	return nil
}

// Extract returns ctx carrying the trace that carrier (message attributes
// or AMQP headers, as strings) names, if any.
func Extract(ctx context.Context, carrier map[string]string) context.Context {
	return propagator.Extract(ctx, propagation.MapCarrier(carrier))
}

// Inject writes ctx's trace into attrs (traceparent, tracestate).
func Inject(ctx context.Context, attrs map[string]string) {
	propagator.Inject(ctx, propagation.MapCarrier(attrs))
}

// Start starts a span named name as a child of ctx's (a new trace when ctx
// has none).
func Start(ctx context.Context, name string) (context.Context, trace.Span) {
	return tracer().Start(ctx, name)
}

// Log returns log with the trace and span of ctx, in Cloud Logging's keys.
func Log(ctx context.Context, log *slog.Logger, project string) *slog.Logger {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return log
	}
	return log.With(
		slog.String(logging.KeyTrace, "projects/"+project+"/traces/"+sc.TraceID().String()),
		slog.String(logging.KeySpanID, sc.SpanID().String()),
		slog.Bool(logging.KeyTraceSampled, sc.IsSampled()),
	)
}
