package topology_test

import (
	"testing"

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
		t.Errorf("topology.Functions() has %d entry points, want %d listeners + shim, aggregator, DLQ, sweeper", len(entries), len(report.Sources))
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
