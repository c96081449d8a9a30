package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// One trace ID across every hop of a report: DrainTriggers, both stage-1
// listeners, the aggregator twice, the stage-2 listener. The trace is the
// upstream's when its trigger carries W3C trace context, else one DrainTriggers
// starts; every process's log lines about the report name it.
func TestOneTracePerReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	const upstreamTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

	// A trigger from an upstream that traces: W3C traceparent in its headers.
	withTrace, err := e.client.Records.Insert(context.Background(), "withdraw_by_tag_with_payments", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	e.publishWithHeaders(strconv.FormatInt(withTrace, 10), amqp.Table{"traceparent": "00-" + upstreamTrace + "-00f067aa0ba902b7-01"})
	// And one from an upstream that does not.
	noTrace := e.request("withdraw_by_tag_with_payments", seed.Params)

	for _, id := range []int64{withTrace, noTrace} {
		if rec := e.wait(id, 60*time.Second); rec.Status != record.Success {
			t.Fatalf("record %d: %s (%s)", id, rec.Status, rec.FailReason)
		}
	}
	// Every listener of every stage the report reaches sees its stage
	// message (a stage topic fans out to all its listeners) and logs it.
	rep, _ := report.Lookup("withdraw_by_tag_with_payments")
	wantProcs := []string{"Aggregate", "draintriggers"}
	for _, s := range report.Sources {
		if s.Stage <= len(rep.Stages) {
			wantProcs = append(wantProcs, s.EntryPoint)
		}
	}
	sort.Strings(wantProcs)
	for _, tt := range []struct {
		id        int64
		wantTrace string // "" for any single trace
	}{{withTrace, upstreamTrace}, {noTrace, ""}} {
		// The aggregator's last line comes after SUCCESS is visible:
		// wait for it rather than sleep.
		var traces map[string][]string
		deadline := time.Now().Add(10 * time.Second)
		for {
			traces = e.tracesOf(tt.id)
			if len(traces["Aggregate"]) > 0 && strings.Contains(strings.Join(e.linesOf(tt.id, "Aggregate"), "\n"), "report SUCCESS") || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		var procs []string
		ids := map[string]bool{}
		for proc, ts := range traces {
			procs = append(procs, proc)
			for _, tr := range ts {
				if tr != "" {
					ids[tr] = true
				}
			}
		}
		sort.Strings(procs)
		if diff := cmp.Diff(wantProcs, procs); diff != "" {
			t.Errorf("record %d: processes logging about it with a trace (-want +got):\n%s", tt.id, diff)
		}
		if len(ids) != 1 {
			t.Errorf("record %d: %d trace IDs across its hops, want 1: %v", tt.id, len(ids), ids)
		}
		for tr := range ids {
			if want := "projects/e2e-project/traces/" + tt.wantTrace; tt.wantTrace != "" && tr != want {
				t.Errorf("record %d: trace %s, want the upstream's %s", tt.id, tr, want)
			}
		}
		for proc, ts := range traces {
			for _, tr := range ts {
				if tr == "" {
					t.Errorf("record %d: a line of %s about it carries no trace", tt.id, proc)
				}
			}
		}
	}
}

// linesOf returns process proc's log lines about record id.
func (e *env) linesOf(id int64, proc string) []string {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.logDir, proc+".log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if v, ok := m[logging.KeyRecordID].(float64); ok && int64(v) == id {
			out = append(out, sc.Text())
		}
	}
	return out
}

// tracesOf returns, per process, the trace of each of its log lines about
// record id ("" for a line that names none).
func (e *env) tracesOf(id int64) map[string][]string {
	e.t.Helper()
	files, err := filepath.Glob(filepath.Join(e.logDir, "*.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range files {
		proc := strings.TrimSuffix(filepath.Base(f), ".log")
		for _, line := range e.linesOf(id, proc) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				e.t.Fatal(err)
			}
			// One read per file: a line without a trace is kept as "".
			tr, _ := m[logging.KeyTrace].(string)
			out[proc] = append(out[proc], tr)
		}
	}
	return out
}

// publishWithHeaders publishes a trigger body with AMQP headers, as an
// upstream that traces would, and waits for the broker's confirm.
func (e *env) publishWithHeaders(body string, headers amqp.Table) {
	e.t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := trigger.DeclareTrigger(ch, e.client.TriggerQueue); err != nil {
		e.t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		e.t.Fatal(err)
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", e.client.TriggerQueue, false, false,
		amqp.Publishing{Headers: headers, ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: []byte(body)})
	if err != nil {
		e.t.Fatal(err)
	}
	if ok, err := conf.WaitContext(context.Background()); err != nil || !ok {
		e.t.Fatalf("publish not confirmed: %v", err)
	}
}
