// Package logging writes log/slog JSON in the shape Cloud Logging reads
// from stdout: "severity", "message", "time", and the trace field.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Keys every line about a report carries.
const (
	KeyRecordID = "recordId"
	KeyStage    = "stage"
	KeySource   = "source"
	KeyTrace    = "logging.googleapis.com/trace"
	// KeySpanID and KeyTraceSampled complete the trace for Cloud Logging.
	KeySpanID       = "logging.googleapis.com/spanId"
	KeyTraceSampled = "logging.googleapis.com/trace_sampled"
)

// New returns a JSON logger writing to w at level.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: cloudKeys}))
}

// ParseLevel reads a LOG_LEVEL value: DEBUG, INFO, WARNING (or WARN) or
// ERROR, in any case; "" is INFO.
func ParseLevel(name string) (slog.Level, error) {
	switch strings.ToUpper(name) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "", "INFO":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want DEBUG, INFO, WARNING or ERROR)", name)
}

// level is Default's level; the config sets it from LOG_LEVEL.
var level = new(slog.LevelVar)

// SetLevel sets Default's level from a LOG_LEVEL value.
func SetLevel(name string) error {
	l, err := ParseLevel(name)
	if err != nil {
		return err
	}
	level.Set(l)
	return nil
}

func cloudKeys(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "message"
	case slog.LevelKey:
		a.Key = "severity"
		if l, ok := a.Value.Any().(slog.Level); ok && l == slog.LevelWarn {
			a.Value = slog.StringValue("WARNING")
		}
	}
	return a
}

// Default is the process logger: stdout, as Cloud Run and Cloud Functions collect it.
var Default = New(os.Stdout, level)

type ctxKey struct{}

// With stores a logger in ctx.
func With(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// From returns the logger stored in ctx, or Default.
func From(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*slog.Logger); ok {
		return l
	}
	return Default
}
