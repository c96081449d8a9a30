// Package logging writes log/slog JSON in the shape Cloud Logging reads
// from stdout: "severity", "message", "time", and the trace field.
package logging

import (
	"context"
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
)

// New returns a JSON logger writing to w at the level named by LOG_LEVEL
// (DEBUG, INFO, WARNING, ERROR; INFO by default).
func New(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToUpper(os.Getenv("LOG_LEVEL")) {
	case "DEBUG":
		level = slog.LevelDebug
	case "WARNING", "WARN":
		level = slog.LevelWarn
	case "ERROR":
		level = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: cloudKeys}))
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
var Default = New(os.Stdout)

// Trace returns the trace attribute for a request carrying
// X-Cloud-Trace-Context, or an empty attribute.
func Trace(project, header string) slog.Attr {
	if header == "" || project == "" {
		return slog.Attr{}
	}
	id, _, _ := strings.Cut(header, "/")
	return slog.String(KeyTrace, "projects/"+project+"/traces/"+id)
}

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
