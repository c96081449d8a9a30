package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/tracing"
)

// Not parallel: Setup installs the process's tracer provider.

func TestMain(m *testing.M) {
	code := m.Run()
	if err := tracing.Shutdown(context.Background()); err != nil {
		panic(err)
	}
	os.Exit(code)
}

// A trace carried in attributes survives a hop: the next handler's span
// is in the same trace, with a new span ID, and its log lines name both.
func TestTraceCrossesAHop(t *testing.T) {
	if err := tracing.Setup(context.Background(), tracing.ExporterNone, "p"); err != nil {
		t.Fatal(err)
	}

	const upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx, span := tracing.Start(tracing.Extract(context.Background(), map[string]string{"traceparent": upstream}), "DrainTriggers")
	attrs := map[string]string{"recordId": "7"}
	tracing.Inject(ctx, attrs)
	span.End()
	if !strings.HasPrefix(attrs["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-") || attrs["traceparent"] == upstream {
		t.Fatalf("traceparent = %q; want the upstream's trace with DrainTriggers' span", attrs["traceparent"])
	}

	ctx2, span2 := tracing.Start(tracing.Extract(context.Background(), attrs), "Aggregate")
	defer span2.End()
	var buf bytes.Buffer
	tracing.Log(ctx2, logging.New(&buf, slog.LevelInfo), "p").Info("hop")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if got, want := line[logging.KeyTrace], "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"; got != want {
		t.Errorf("trace = %v, want %v", got, want)
	}
	if id, _ := line[logging.KeySpanID].(string); len(id) != 16 || strings.Contains(attrs["traceparent"], id) {
		t.Errorf("spanId = %v; want the second hop's own span", line[logging.KeySpanID])
	}
}

// Without a trace in the carrier a new one starts; a log line without a
// span gets no trace fields.
func TestNewTraceAndNoTrace(t *testing.T) {
	if err := tracing.Setup(context.Background(), tracing.ExporterNone, "p"); err != nil {
		t.Fatal(err)
	}
	ctx, span := tracing.Start(tracing.Extract(context.Background(), map[string]string{}), "DrainTriggers")
	defer span.End()
	attrs := map[string]string{}
	tracing.Inject(ctx, attrs)
	if len(attrs["traceparent"]) != 55 {
		t.Errorf("traceparent = %q; want a new W3C trace", attrs["traceparent"])
	}
	var buf bytes.Buffer
	tracing.Log(context.Background(), logging.New(&buf, slog.LevelInfo), "p").Info("x")
	if strings.Contains(buf.String(), logging.KeyTrace) {
		t.Errorf("line without a span names a trace: %s", buf.String())
	}
}

func TestSetupRejectsUnknownExporter(t *testing.T) {
	if err := tracing.Setup(context.Background(), "zipkin", "p"); err == nil || !strings.Contains(err.Error(), "TRACE_EXPORTER") {
		t.Errorf("Setup(zipkin) = %v; want an error naming TRACE_EXPORTER", err)
	}
}

// One provider per process: every function environment calls Setup, and
// none replaces the provider another installed (spans it still batches
// would be dropped); another exporter is refused; Shutdown ends it, and
// only then does Setup install a new one.
func TestSetupOncePerProcess(t *testing.T) {
	ctx := context.Background()
	if err := tracing.Setup(ctx, tracing.ExporterNone, "p"); err != nil {
		t.Fatal(err)
	}
	first := otel.GetTracerProvider()
	if err := tracing.Setup(ctx, "", "p"); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if otel.GetTracerProvider() != first {
		t.Error("a second Setup replaced the process's tracer provider")
	}
	if err := tracing.Setup(ctx, tracing.ExporterStdout, "p"); err == nil || !strings.Contains(err.Error(), `already exports its spans to "none"`) {
		t.Errorf("Setup(stdout) after Setup(none) = %v; want it refused", err)
	}
	if err := tracing.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tracing.Setup(ctx, tracing.ExporterNone, "p"); err != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() == first {
		t.Error("Setup after Shutdown kept the provider that was shut down")
	}
}
