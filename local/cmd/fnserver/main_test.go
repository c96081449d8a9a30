package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// childMain, in the environment, makes the test binary a function server:
// "buildpack" runs what the Go buildpack generates (import the root
// package, call funcframework.Start, nothing else), "fnserver" this
// command's main.
const childMain = "FNSERVER_TEST_MAIN"

func TestMain(m *testing.M) {
	switch os.Getenv(childMain) {
	case "buildpack":
		if err := funcframework.Start(os.Getenv("PORT")); err != nil {
			fmt.Fprintln(os.Stderr, "Function failed to start:", err)
			os.Exit(1)
		}
		return
	case "fnserver":
		main()
		return
	}
	os.Exit(m.Run())
}

// syncBuffer is a child's stderr, read while the child writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Spans a function ended before its instance got SIGTERM reach the
// exporter: the batcher holds them for up to 5 s, and the process flushes
// it on SIGTERM, in production's main (the buildpack's, which handles no
// signal itself) and in this command's alike. A real process, a real
// SIGTERM, the stdout exporter (which writes to stderr).
func TestSpansFlushedOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Redis")
	}
	t.Parallel()
	for _, mainName := range []string{"buildpack", "fnserver"} {
		t.Run(mainName, func(t *testing.T) {
			t.Parallel()
			traceID := fmt.Sprintf("%032x", time.Now().UnixNano())
			port := freePort(t)
			prefix := "fnserver-sigterm-" + traceID + ":"
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(),
				childMain+"="+mainName,
				"PORT="+port,
				"FUNCTION_TARGET="+topology.EntryAggregate,
				"TRACE_EXPORTER=stdout",
				"GOOGLE_CLOUD_PROJECT=fnserver-test",
				// Only Redis is reached (the error note); the rest is
				// configured but never dialled on this path.
				"REDIS_ADDR=127.0.0.1:6379",
				"REDIS_KEY_PREFIX="+prefix,
				"RECORD_DSN=root@tcp(127.0.0.1:1)/unused",
				"PUBSUB_EMULATOR_HOST=127.0.0.1:1",
				"STORAGE_EMULATOR_HOST=127.0.0.1:1",
			)
			var stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// exited closes when the child has ended, with waitErr set.
			exited := make(chan struct{})
			var waitErr error
			go func() { waitErr = cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				cmd.Process.Kill() // if it is still running
				<-exited
				rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
				defer rdb.Close()
				if keys, err := rdb.Keys(context.Background(), prefix+"*").Result(); err != nil || len(keys) > 0 {
					t.Errorf("keys under %s after the test: %v, %v", prefix, keys, err)
				}
			})
			url := "http://127.0.0.1:" + port + "/"
			waitServing(t, url, exited, &stderr)

			// A done message of a newer schema: the aggregator's span
			// ends with a retry (500), before the answer is sent.
			data, _ := json.Marshal(map[string]any{"v": 99, "recordId": 1})
			body, _ := json.Marshal(map[string]any{
				"message": map[string]any{
					"data":       base64.StdEncoding.EncodeToString(data),
					"messageId":  "m1",
					"attributes": map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"},
				},
				"subscription":    "projects/fnserver-test/subscriptions/report-aggregate",
				"deliveryAttempt": 1,
			})
			resp, err := http.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusInternalServerError {
				t.Fatalf("push answered %s, want 500 (a newer schema is retried); output:\n%s", resp.Status, stderr.String())
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
				if waitErr != nil {
					t.Errorf("after SIGTERM the process ended with %v, want exit status 0 (it flushes, then exits)", waitErr)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("still running 60 s after SIGTERM; output:\n%s", stderr.String())
			}
			if spans := spansOf(stderr.String(), traceID); len(spans) != 1 || spans[0] != state.AggregatorName {
				t.Errorf("spans of trace %s exported: %q, want [%s]; output:\n%s", traceID, spans, state.AggregatorName, stderr.String())
			}
		})
	}
}

// spansOf returns the names of the spans of traceID that the stdout
// exporter wrote in out (one JSON object a line, as log lines are).
func spansOf(out, traceID string) []string {
	var names []string
	for line := range strings.Lines(out) {
		var s struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		if json.Unmarshal([]byte(line), &s) == nil && s.SpanContext.TraceID == traceID {
			names = append(names, s.Name)
		}
	}
	return names
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// waitServing waits until the server at url answers anything.
func waitServing(t *testing.T, url string, exited <-chan struct{}, out *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("the function server exited before serving; output:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the function server did not serve within 60 s: %v; output:\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FNSERVER_PPROF serves net/http/pprof beside the function, at the address
// the log names: a CPU profile of a function in the local stack.
func TestPprof(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childMain+"=fnserver", "PORT="+port, "FUNCTION_TARGET="+topology.EntrySweep,
		"FNSERVER_PPROF=127.0.0.1:0")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	waitServing(t, "http://127.0.0.1:"+port+"/", exited, &out)
	_, rest, ok := strings.Cut(out.String(), "pprof serving")
	_, url, ok2 := strings.Cut(rest, "url=")
	if !ok || !ok2 {
		t.Fatalf("no pprof address logged; output:\n%s", out.String())
	}
	url = strings.Fields(url)[0]
	resp, err := http.Get(url + "profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(b) == 0 {
		t.Errorf("%sprofile: %s, %d bytes", url, resp.Status, len(b))
	}
}
