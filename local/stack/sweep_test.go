package stack

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/stuck"
)

// What the scheduler makes of each answer the Sweep function gives
// (functions/sweep: JSON on 200 and on 500, plain text on 409 and before
// the sweep starts), and of no answer at all. The function itself runs in
// TestSweeper (local/e2e); here a server answers as it does.
func TestCallSweep(t *testing.T) {
	t.Parallel()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + refused.Addr().String() + "/"
	refused.Close()

	tests := []struct {
		name   string
		status int
		body   string
		url    string // "" the test server
		want   SweepRun
		errHas string
	}{
		{name: "swept", status: 200, body: `{"republished":[4],"lost":[1,2],"timedOut":null}`,
			want: SweepRun{Status: 200, Result: stuck.Result{Republished: []int64{4}, Lost: []int64{1, 2}}}},
		{name: "incomplete: what it did and why not all", status: 500, body: `{"republished":null,"lost":[7],"timedOut":null,"error":"redis hmget: i/o timeout"}`,
			want: SweepRun{Status: 500, Result: stuck.Result{Lost: []int64{7}}, Err: "redis hmget: i/o timeout"}},
		{name: "already sweeping", status: 409, body: "a sweep is already running on this instance\n",
			want: SweepRun{Status: 409, Err: "409 Conflict: a sweep is already running on this instance"}},
		{name: "200 that is not JSON", status: 200, body: "ok", want: SweepRun{Status: 200}, errHas: "answer is not JSON"},
		{name: "no server", url: refusedURL, errHas: "POST " + refusedURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var method string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				method = r.Method
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			url := tt.url
			if url == "" {
				url = srv.URL + "/"
			}
			run := callSweep(context.Background(), srv.Client(), upProc(), url, time.Second)
			if tt.errHas != "" {
				if !strings.Contains(run.Err, tt.errHas) {
					t.Errorf("Err = %q, want it to contain %q", run.Err, tt.errHas)
				}
				run.Err, tt.want.Err = "", ""
			}
			if run.Started.IsZero() || run.Ended.Before(run.Started) {
				t.Errorf("run from %v to %v", run.Started, run.Ended)
			}
			run.Started, run.Ended = time.Time{}, time.Time{}
			if diff := cmp.Diff(tt.want, run); diff != "" {
				t.Errorf("run (-want +got):\n%s", diff)
			}
			if tt.url == "" && method != http.MethodPost {
				t.Errorf("method %q, want POST (Cloud Scheduler's http_method)", method)
			}
		})
	}
}

// A Sweep instance being replaced is waited for, up to one interval, and
// the run says so if it does not come back.
func TestCallSweepWaitsForInstance(t *testing.T) {
	t.Parallel()
	down := &proc{name: Sweep, changed: make(chan struct{}), instances: []Instance{{PID: 1}}}
	run := callSweep(context.Background(), http.DefaultClient, down, "http://127.0.0.1:1/", 50*time.Millisecond)
	if !strings.Contains(run.Err, "waiting for sweep to be up") || run.Status != 0 {
		t.Errorf("run %+v, want no call and an error naming the wait", run)
	}
}

// upProc is a proc whose one instance is running and ready.
func upProc() *proc {
	return &proc{name: Sweep, changed: make(chan struct{}), cmd: &exec.Cmd{},
		instances: []Instance{{PID: 1, Ready: time.Now()}}}
}
