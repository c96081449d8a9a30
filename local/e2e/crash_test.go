package e2e

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/relay"
	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// kill is one SIGKILL the test sent, and what followed.
type kill struct {
	name     string
	pid      int
	at       time.Time
	exited   time.Time // the stack saw the process end
	ready    time.Time // the next instance listened
	inFlight int64     // POSTs in flight to it when it was killed
}

// crashVictim is a function process the test kills, and its subscription.
type crashVictim struct{ name, sub string }

// Cloud Run replaces a crashed instance, and so does the local stack. 60
// reports (30 of each type) are requested at once; the ListenWithdraw and
// Aggregate processes are killed with SIGKILL while pushes are in flight
// to them, and once more after their restart if work remains. Every
// report must end SUCCESS with the reference CSV, each push in flight at a
// kill failed at the relay and was redelivered after the backoff as a
// further delivery attempt, and nothing was dead-lettered.
func TestCrashedInstancesAreReplaced(t *testing.T) {
	t.Parallel()
	crashUnderLoad(t, 30, nil)
}

// The same with every report split into many parts (PART_ROWS=2): the
// kills land while parts of several reports are in flight, and a killed
// part is redelivered on its own without redoing another part.
func TestCrashedInstancesWithPartsInFlight(t *testing.T) {
	t.Parallel()
	crashUnderLoad(t, 6, partsEnv(2))
}

func crashUnderLoad(t *testing.T, perType int, envFor func(*env) map[string][]string) {
	const backoff = 500 * time.Millisecond
	began := time.Now()
	var pushes deliveries
	e := newEnv(t, options{backoff: backoff, observe: pushes.add, envFor: envFor})
	e.keepVersions()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	types := []struct{ typ, golden string }{
		{"withdraw_by_tag", seed.GoldenWithdrawByTag},
		{"withdraw_by_tag_with_payments", seed.GoldenWithdrawByTagWithPayments},
	}
	type job struct {
		typ, golden string
		id          int64
	}
	var jobs []*job
	for i := range 2 * perType {
		jobs = append(jobs, &job{typ: types[i%2].typ, golden: types[i%2].golden})
	}

	victims := []crashVictim{{"ListenWithdraw", "listen-withdraw"}, {"Aggregate", topology.SubAggregate}}
	allFinal := make(chan struct{})
	var killsMu sync.Mutex
	var kills []kill
	var victimsWG sync.WaitGroup
	for _, v := range victims {
		victimsWG.Go(func() {
			for round := 1; round <= 2; round++ {
				k, ok := killWhenBusy(ctx, t, e, v, round, allFinal)
				if !ok {
					return
				}
				killsMu.Lock()
				kills = append(kills, k)
				killsMu.Unlock()
			}
		})
	}

	// Every report requested at once, as a burst from upstream.
	var reqWG sync.WaitGroup
	for _, j := range jobs {
		reqWG.Go(func() {
			id, err := e.client.Request(ctx, j.typ, []byte(seed.Params))
			if err != nil {
				t.Errorf("request %s: %v", j.typ, err)
				return
			}
			j.id = id
		})
	}
	reqWG.Wait()
	if t.Failed() {
		close(allFinal)
		victimsWG.Wait()
		t.FailNow()
	}

	finals := make([]time.Time, len(jobs))
	recs := make([]record.Record, len(jobs))
	var waitWG sync.WaitGroup
	for i, j := range jobs {
		waitWG.Go(func() {
			rec, err := e.client.Wait(ctx, j.id, nil)
			if err != nil {
				t.Errorf("%s record %d: %v", j.typ, j.id, err)
			}
			recs[i], finals[i] = rec, time.Now()
		})
	}
	waitWG.Wait()
	close(allFinal)
	victimsWG.Wait()
	if t.Failed() {
		t.FailNow()
	}

	for i, j := range jobs {
		rec := recs[i]
		if rec.Status != record.Success {
			t.Errorf("%s record %d: %s %q, want SUCCESS", j.typ, j.id, rec.Status, rec.FailReason)
			continue
		}
		want := seed.Golden(j.golden)
		if wantRows := int64(strings.Count(string(want), "\n") - 1); rec.RowCount != wantRows {
			t.Errorf("record %d: row_count %d, want %d", j.id, rec.RowCount, wantRows)
		}
		got, err := e.client.Fetch(ctx, rec.FilePath)
		if err != nil {
			t.Errorf("record %d: %v", j.id, err)
			continue
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("record %d (%s): CSV differs from the reference (-want +got):\n%s", j.id, j.typ, diff)
		}
		if !e.hashGone(j.id) {
			t.Errorf("record %d: hash still in Redis after SUCCESS", j.id)
		}
	}

	// The faults really happened: each victim killed at least once and
	// restarted once per kill, each kill seen as such.
	byName := map[string][]kill{}
	for _, k := range kills {
		byName[k.name] = append(byName[k.name], k)
	}
	for _, v := range victims {
		ks := byName[v.name]
		if len(ks) == 0 {
			t.Errorf("%s was never killed: no push was in flight to it", v.name)
			continue
		}
		if got := e.stack.Restarts(v.name); got != len(ks) {
			t.Errorf("%s restarted %d times after %d kills", v.name, got, len(ks))
		}
		for i, inst := range e.stack.Instances(v.name)[:len(ks)] {
			if inst.PID != ks[i].pid || inst.Exit != "signal: killed" {
				t.Errorf("%s instance %d: pid %d ended %q; want pid %d ended by signal: killed", v.name, i, inst.PID, inst.Exit, ks[i].pid)
			}
		}
	}

	// Follow every message that had a push fail: it failed without an
	// answer (the process died under it), was redelivered after the
	// backoff with the next deliveryAttempt, and was acked in the end.
	all := pushes.list()
	type msgKey struct{ sub, id string }
	bySub := map[msgKey][]relay.Delivery{}
	for _, d := range all {
		k := msgKey{d.Subscription, d.MessageID}
		bySub[k] = append(bySub[k], d)
	}
	failedIn := map[string]int{}
	deliveriesPerFailed := map[int]int{} // deliveries until the ack → messages
	for k, ds := range bySub {
		sort.Slice(ds, func(a, b int) bool { return ds[a].Attempt < ds[b].Attempt })
		failed := slices.IndexFunc(ds, func(d relay.Delivery) bool { return !d.Acked })
		if failed < 0 {
			continue
		}
		failedIn[k.sub]++
		var attempts []int32
		for _, d := range ds {
			attempts = append(attempts, d.Attempt)
			if !d.Acked && (d.Err == nil || d.Status != 0) {
				t.Errorf("%s message %s: attempt %d answered %d (%v); only pushes to a killed process should fail", k.sub, k.id, d.Attempt, d.Status, d.Err)
			}
		}
		last := ds[len(ds)-1]
		if !last.Acked {
			t.Errorf("%s message %s: last delivery (attempt %d) not acked", k.sub, k.id, last.Attempt)
		}
		for i := 1; i < len(ds); i++ {
			if ds[i].Attempt != ds[i-1].Attempt+1 {
				t.Errorf("%s message %s: deliveryAttempt values %v, want consecutive", k.sub, k.id, attempts)
				break
			}
			if !ds[i-1].Acked {
				if gap := ds[i].Start.Sub(ds[i-1].End); gap < backoff {
					t.Errorf("%s message %s: redelivered %v after the failure, want the %v backoff first", k.sub, k.id, gap, backoff)
				}
			}
		}
		deliveriesPerFailed[len(ds)]++
	}
	for _, v := range victims {
		if len(byName[v.name]) > 0 && failedIn[v.sub] == 0 {
			t.Errorf("%s: no push failed although it was killed with %d in flight", v.sub, byName[v.name][0].inFlight)
		}
	}
	for sub, n := range failedIn {
		if !slices.ContainsFunc(victims, func(v crashVictim) bool { return v.sub == sub }) {
			t.Errorf("%s: %d messages had a failed push, but its process was not killed", sub, n)
		}
	}
	if got := e.stack.Relay.Stats(topology.SubDeadLetter).Posts; got != 0 {
		t.Errorf("%d pushes to DeadLetter, want none", got)
	}

	// What was measured.
	lastFinal := slices.MaxFunc(finals, func(a, b time.Time) int { return a.Compare(b) })
	firstKill := time.Time{}
	for _, k := range kills {
		if firstKill.IsZero() || k.at.Before(firstKill) {
			firstKill = k.at
		}
		t.Logf("killed %s pid %d with %d pushes in flight: process gone after %v, new instance listening %v after the kill",
			k.name, k.pid, k.inFlight, k.exited.Sub(k.at).Round(time.Millisecond), k.ready.Sub(k.at).Round(time.Millisecond))
	}
	uploads := map[int]int{}
	for _, j := range jobs {
		uploads[e.uploads(j.id)]++
	}
	t.Logf("messages with a failed push, by subscription: %v; deliveries until ack → messages: %v", failedIn, deliveriesPerFailed)
	t.Logf("uploads per record → records: %v (a takeover after a killed aggregator may upload again)", uploads)
	t.Logf("%d reports: all final %v after the first kill, %v after the requests; test %v",
		len(jobs), lastFinal.Sub(firstKill).Round(time.Millisecond), lastFinal.Sub(began).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// killWhenBusy waits until pushes are in flight to v, kills its process
// with SIGKILL and waits for instance round (the restart) to listen. It
// returns false if every report ended first.
func killWhenBusy(ctx context.Context, t *testing.T, e *env, v crashVictim, round int, allFinal <-chan struct{}) (kill, bool) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if n := e.stack.Relay.Stats(v.sub).InFlight; n > 0 {
			pid := e.stack.PID(v.name)
			if pid == 0 {
				t.Errorf("%s: no running process to kill", v.name)
				return kill{}, false
			}
			k := kill{name: v.name, pid: pid, at: time.Now(), inFlight: n}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill %s pid %d: %v", v.name, pid, err)
				return kill{}, false
			}
			inst, err := e.stack.WaitReady(ctx, v.name, round)
			if err != nil {
				t.Errorf("%s after kill %d: %v", v.name, round, err)
				return kill{}, false
			}
			k.ready = inst.Ready
			k.exited = e.stack.Instances(v.name)[round-1].Exited
			return k, true
		}
		select {
		case <-allFinal:
			return kill{}, false
		case <-ctx.Done():
			t.Errorf("%s: %v before a push was in flight", v.name, ctx.Err())
			return kill{}, false
		case <-tick.C:
		}
	}
}
