package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fanoutexport/fanoutexport/shared/logging"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestCloudLoggingKeys(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := logging.New(&buf, slog.LevelDebug).With(logging.KeyRecordID, 1111, logging.KeyStage, 1, logging.KeySource, "plt_fund.vs_withdraw")
	log.Debug("d")
	log.Info("i")
	log.Warn("w", "error", "boom")
	log.Error("e")
	log.Info("with trace", slog.String(logging.KeyTrace, "projects/my-project/traces/105445aa7843bc8bf206b12000100000"))
	log.WithGroup("g").Info("grouped", "msg", "inner", "level", "inner")

	got := lines(t, &buf)
	common := map[string]any{"recordId": 1111.0, "stage": 1.0, "source": "plt_fund.vs_withdraw"}
	with := func(m map[string]any) map[string]any {
		for k, v := range common {
			m[k] = v
		}
		return m
	}
	want := []map[string]any{
		with(map[string]any{"severity": "DEBUG", "message": "d"}),
		with(map[string]any{"severity": "INFO", "message": "i"}),
		with(map[string]any{"severity": "WARNING", "message": "w", "error": "boom"}),
		with(map[string]any{"severity": "ERROR", "message": "e"}),
		with(map[string]any{"severity": "INFO", "message": "with trace",
			"logging.googleapis.com/trace": "projects/my-project/traces/105445aa7843bc8bf206b12000100000"}),
		with(map[string]any{"severity": "INFO", "message": "grouped", "g": map[string]any{"msg": "inner", "level": "inner"}}),
	}
	for _, m := range got {
		if _, ok := m["time"].(string); !ok {
			t.Errorf("line %v has no time", m)
		}
		for _, k := range []string{"msg", "level"} {
			if _, ok := m[k]; ok {
				t.Errorf("line %v has slog's own key %q", m, k)
			}
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreMapEntries(func(k string, _ any) bool { return k == "time" })); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

func TestLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want []string // severities written of DEBUG, INFO, WARNING, ERROR
	}{
		{"", []string{"INFO", "WARNING", "ERROR"}},
		{"debug", []string{"DEBUG", "INFO", "WARNING", "ERROR"}},
		{"WARNING", []string{"WARNING", "ERROR"}},
		{"WARN", []string{"WARNING", "ERROR"}},
		{"ERROR", []string{"ERROR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			level, err := logging.ParseLevel(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			log := logging.New(&buf, level)
			log.Debug("x")
			log.Info("x")
			log.Warn("x")
			log.Error("x")
			var got []string
			for _, m := range lines(t, &buf) {
				got = append(got, m["severity"].(string))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("LOG_LEVEL=%q (-want +got):\n%s", tt.name, diff)
			}
		})
	}
	if _, err := logging.ParseLevel("nonsense"); err == nil {
		t.Error(`ParseLevel("nonsense") = nil error; a typo must not silently log at INFO`)
	}
}

func TestContextLogger(t *testing.T) {
	t.Parallel()
	if logging.From(context.Background()) != logging.Default {
		t.Errorf("From(empty context) is not Default")
	}
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	if logging.From(logging.With(context.Background(), l)) != l {
		t.Errorf("From(With(l)) is not l")
	}
}
