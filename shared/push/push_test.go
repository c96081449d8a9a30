package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
)

// fn is a Func whose Handle is a plain function. The fail and park paths
// need real Redis and Pub/Sub; the listener's tests cover them through this
// handler (functions/listen TestErrorPaths).
type fn struct {
	serverenv.Env
	handle func(*message.Envelope) error
	fail   func() error // Fail's work; nil: not expected
	got    *message.Envelope
}

func (f *fn) Handle(_ context.Context, m *message.Envelope, _ *slog.Logger) error {
	f.got = m
	return f.handle(m)
}

func (f *fn) Fail(context.Context, *message.Envelope, message.Header, string, *slog.Logger) error {
	if f.fail != nil {
		return f.fail()
	}
	return errors.New("not expected")
}

func (f *fn) ServerEnv() *serverenv.Env { return &f.Env }

func TestServe(t *testing.T) {
	t.Parallel()
	const body = `{"message":{"data":"aGk=","messageId":"7","attributes":{"a":"b"}},"subscription":"projects/p/subscriptions/s","deliveryAttempt":3}`
	tests := []struct {
		name   string
		body   string
		handle func(*message.Envelope) error
		setup  error
		want   int
	}{
		{"handled: ack", body, func(*message.Envelope) error { return nil }, nil, http.StatusNoContent},
		{"transient error: redeliver", body, func(*message.Envelope) error { return errors.New("db down") }, nil, http.StatusInternalServerError},
		{"not push JSON", "hello", nil, nil, http.StatusBadRequest},
		{"push without message id", `{"message":{"data":"aGk="}}`, nil, nil, http.StatusBadRequest},
		{"setup failed: retry", body, nil, errors.New("no config"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fn{Env: serverenv.Env{Project: "p"}, handle: tt.handle}
			h := New("test", func(context.Context) (Func, error) {
				if tt.setup != nil {
					return nil, tt.setup
				}
				return f, nil
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body)))
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
			got := f.got
			if tt.want == http.StatusNoContent && (got == nil || string(got.Message.Data) != "hi" || got.ID() != "7" || got.DeliveryAttempt != 3 || got.Message.Attributes["a"] != "b") {
				t.Errorf("handler got %+v", got)
			}
		})
	}
}

// lockedBuffer is a log sink the handler's goroutines may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// A panic in a function's Handle, or in its Fail, is recovered: the answer
// is 500, so Pub/Sub redelivers (then dead-letters) the message like any
// other error; the panic is logged with its stack and the record; a
// Handle's panic is noted in the report's hash for DeadLetter's
// reason; and the same handler goes on serving. Real Redis for the hash.
func TestPanicIsRetried(t *testing.T) {
	t.Parallel()
	testdb.NeedRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { rdb.Close() })
	prefix := fmt.Sprintf("panictest%d:", rand.Uint64())
	st := state.New(rdb, prefix, time.Minute)
	ctx := context.Background()
	tests := []struct {
		name   string
		id     int64
		handle func(*message.Envelope) error
		fail   func() error
		frame  string // a function the logged stack must name
		noted  bool   // the panic is noted in the hash (Handle's errors are; Fail's are not)
	}{
		{"Handle panics", 41, func(*message.Envelope) error { panic("boom in Handle") }, nil, "push.TestPanicIsRetried.func", true},
		{"Handle indexes out of range", 42, func(m *message.Envelope) error {
			var rows []string
			_ = rows[len(m.Message.Data)] // a runtime error, not a panic call
			return nil
		}, nil, "push.TestPanicIsRetried.func", true},
		{"Fail panics", 43, func(*message.Envelope) error { return fault.Permanentf("bad params") }, func() error { panic("boom in Fail") }, "push.(*fn).Fail", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			t.Cleanup(func() { rdb.Del(context.Background(), st.Key(tt.id)) })
			if _, err := st.Create(ctx, tt.id, "withdraw_by_tag", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			calls := 0
			f := &fn{Env: serverenv.Env{Project: "p", State: st}, fail: tt.fail, handle: func(m *message.Envelope) error {
				calls++
				if calls > 1 {
					return nil // the redelivery finds the fault gone
				}
				return tt.handle(m)
			}}
			h := New("test", func(context.Context) (Func, error) { return f, nil })
			logs := &lockedBuffer{}
			h.log = logging.New(logs, slog.LevelInfo)
			body := fmt.Sprintf(`{"message":{"data":"e30=","messageId":"m1","attributes":{"recordId":"%d","stage":"1"}},"subscription":"s","deliveryAttempt":1}`, tt.id)
			for attempt, want := range []int{http.StatusInternalServerError, http.StatusNoContent} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
				if rec.Code != want {
					t.Fatalf("delivery %d: status %d, want %d", attempt+1, rec.Code, want)
				}
			}
			var found bool
			for _, l := range logs.lines(t) {
				if msg, _ := l["message"].(string); !strings.HasSuffix(msg, " panicked") {
					continue
				}
				found = true
				stack, _ := l["stack"].(string)
				if !strings.Contains(stack, tt.frame) {
					t.Errorf("logged stack does not name %s:\n%s", tt.frame, stack)
				}
				got := map[string]any{"severity": l["severity"], "recordId": l["recordId"], "source": l["source"], "messageId": l["messageId"]}
				want := map[string]any{"severity": "ERROR", "recordId": float64(tt.id), "source": "test", "messageId": "m1"}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("panic log line (-want +got):\n%s", diff)
				}
			}
			if !found {
				t.Error("no log line for the panic")
			}
			if tt.noted {
				note, err := rdb.HGet(ctx, st.Key(tt.id), state.ErrorField("test")).Result()
				if err != nil || !strings.Contains(note, " panicked: ") {
					t.Errorf("error noted in the hash = %q, %v; want the panic", note, err)
				}
			}
		})
	}
}
