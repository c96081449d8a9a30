package topology_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/config"

	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

func TestFunctionsUnique(t *testing.T) {
	t.Parallel()
	fns := topology.Functions()
	entries := map[string]int{}
	subs := map[string]int{}
	for _, f := range fns {
		entries[f.EntryPoint]++
		if f.Subscription != "" {
			subs[f.Subscription]++
		}
	}
	for ep, n := range entries {
		if n != 1 {
			t.Errorf("entry point %s appears %d times in Functions()", ep, n)
		}
	}
	for s, n := range subs {
		if n != 1 {
			t.Errorf("subscription %s appears %d times in Functions()", s, n)
		}
	}
	for _, s := range report.Sources {
		if entries[s.EntryPoint] != 1 {
			t.Errorf("listener %s (%s) missing from topology.Functions()", s.EntryPoint, s.Name())
		}
		got, ok := report.SourceByEntryPoint(s.EntryPoint)
		if !ok || got.Name() != s.Name() {
			t.Errorf("report.SourceByEntryPoint(%s) = %s, %v; want %s", s.EntryPoint, got.Name(), ok, s.Name())
		}
	}
	if _, ok := report.SourceByEntryPoint("Aggregate"); ok {
		t.Errorf("report.SourceByEntryPoint(Aggregate) found a source")
	}
	if len(entries) != len(report.Sources)+4 {
		t.Errorf("topology.Functions() has %d entry points, want %d listeners + DrainTriggers, Aggregate, DeadLetter, Sweep", len(entries), len(report.Sources))
	}
}

func TestBySubscription(t *testing.T) {
	t.Parallel()
	for _, want := range topology.Functions() {
		if want.Subscription == "" {
			continue
		}
		got, ok := topology.BySubscription(want.Subscription)
		if !ok || got.EntryPoint != want.EntryPoint {
			t.Errorf("BySubscription(%q) = %s, %v; want %s", want.Subscription, got.EntryPoint, ok, want.EntryPoint)
		}
	}
	if f, ok := topology.BySubscription(""); ok {
		t.Errorf("BySubscription(\"\") = %s; want none", f.EntryPoint)
	}
}

// TestTopologyJSONIsCurrent: the committed terraform/topology.json (and the
// terraform tests' mocks of the listeners) are what the generator writes
// from the definitions as they are now. It needs no
// server and runs under -short, so `make test` fails on a stale file.
func TestTopologyJSONIsCurrent(t *testing.T) {
	t.Parallel()
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := topology.JSON(gomod)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "terraform", "topology.json"))
	if err != nil {
		t.Fatalf("%v: run go generate ./shared/topology", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("terraform/topology.json is not current: run go generate ./shared/topology and commit it (-committed +generated):\n%s",
			cmp.Diff(string(got), string(want)))
	}
	wantMocks, err := topology.MocksHCL()
	if err != nil {
		t.Fatal(err)
	}
	gotMocks, err := os.ReadFile(filepath.Join("..", "..", "terraform", "tests", "mocks", "topology.tfmock.hcl"))
	if err != nil {
		t.Fatalf("%v: run go generate ./shared/topology", err)
	}
	if !bytes.Equal(gotMocks, wantMocks) {
		t.Errorf("terraform/tests/mocks/topology.tfmock.hcl is not current: run go generate ./shared/topology and commit it (-committed +generated):\n%s",
			cmp.Diff(string(gotMocks), string(wantMocks)))
	}
}

// TestDocumentMatchesFunctions: the document holds every function and
// listener of Functions(), each listener on its stage's topic with the
// push delivery policy, and every topic and pull subscription.
func TestDocumentMatchesFunctions(t *testing.T) {
	t.Parallel()
	d, err := topology.Build()
	if err != nil {
		t.Fatal(err)
	}
	listeners := 0
	for _, f := range topology.Functions() {
		fd, ok := d.Functions[f.EntryPoint]
		if !ok || fd.Kind != f.Kind {
			t.Errorf("%s: document has %+v, %v", f.EntryPoint, fd, ok)
		}
		src, isListener := report.SourceByEntryPoint(f.EntryPoint)
		if !isListener {
			continue
		}
		listeners++
		l, ok := d.Listeners[f.EntryPoint]
		switch {
		case !ok:
			t.Errorf("listener %s is missing from the document", f.EntryPoint)
		case l.Topic != topology.StageTopic(src.Stage) || l.Database != src.Database || l.DSNEnv != report.DSNEnv(src.Database) || l.Subscription != src.Subscription || l.Slug != src.Slug:
			t.Errorf("listener %s: document %+v does not match its source %s", f.EntryPoint, l, src.Name())
		case fd.Delivery == nil || *fd.Delivery != d.PushDelivery:
			t.Errorf("listener %s: delivery %+v, want the push policy %+v", f.EntryPoint, fd.Delivery, d.PushDelivery)
		}
		if !slices.Contains(d.Databases[src.Database].Listeners, f.EntryPoint) {
			t.Errorf("source_databases[%s] does not list %s", src.Database, f.EntryPoint)
		}
	}
	if listeners == 0 || len(d.Listeners) != listeners {
		t.Errorf("document has %d listeners, Functions() %d", len(d.Listeners), listeners)
	}
	for _, tp := range topology.Topics() {
		if d.Topics[tp].Purpose == "" {
			t.Errorf("topic %s has no purpose", tp)
		}
	}
	if len(d.Topics) != len(topology.Topics()) || len(d.StageTopics) != report.MaxStages() {
		t.Errorf("document has %d topics (%d stages), want %d (%d)", len(d.Topics), len(d.StageTopics), len(topology.Topics()), report.MaxStages())
	}
	for s, p := range d.PullSubs {
		if _, ok := d.Topics[p.Topic]; !ok {
			t.Errorf("pull subscription %s reads %s, which is no topic", s, p.Topic)
		}
	}
}

// TestStateTTLIsConfigDefault: Terraform's STATE_TTL (from the document) is
// the default the functions' config has.
func TestStateTTLIsConfigDefault(t *testing.T) {
	t.Parallel()
	f, ok := reflect.TypeOf(config.Redis{}).FieldByName("StateTTL")
	if !ok {
		t.Fatal("config.Redis has no StateTTL")
	}
	def := ""
	for _, opt := range strings.Split(f.Tag.Get("env"), ",")[1:] {
		if v, ok := strings.CutPrefix(strings.TrimSpace(opt), "default="); ok {
			def = v
		}
	}
	d, err := time.ParseDuration(def)
	if err != nil || d != topology.StateTTLSeconds*time.Second {
		t.Errorf("config.Redis STATE_TTL default %q, want %ds (topology.StateTTLSeconds)", def, topology.StateTTLSeconds)
	}
}

func TestGoRuntime(t *testing.T) {
	t.Parallel()
	got, err := topology.GoRuntime([]byte("module x\n\ngo 1.26.8\n\ntoolchain go1.26.9\n"))
	if err != nil || got != "go126" {
		t.Errorf("GoRuntime = %q, %v; want go126", got, err)
	}
	for _, bad := range []string{"module x\n", "module x\ngo 1\n"} {
		if got, err := topology.GoRuntime([]byte(bad)); err == nil {
			t.Errorf("GoRuntime(%q) = %q, want an error", bad, got)
		}
	}
}
