package e2e

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// A finished report re-run and its CSV overwritten (hostile-upstream
// finding): 300 copies of one trigger for a two-stage report, so that a
// copy reads the record PROCESSING while the aggregator marks it SUCCESS
// and deletes the hash. Such a copy used to recreate the hash, dispatch
// again and upload over the first object. Now, once the record is final,
// its object never changes (one object generation), the object has
// row_count rows and is the reference CSV, and the record stays as it
// was made final.
func TestFinishedReportIsNeverRerun(t *testing.T) {
	t.Parallel()
	const copies = 300
	var pushes deliveries
	// DrainTriggers' Redis commands go through a proxy that holds each one
	// back: a copy that read the record PROCESSING then reaches Redis
	// after the aggregator's MarkSuccess and hash deletion, as it did by
	// chance on a loaded machine.
	slow := startSlowProxy(t, redisAddr, 30*time.Millisecond)
	e := newEnv(t, options{observe: pushes.add, envFor: func(*env) map[string][]string {
		return map[string][]string{"draintriggers": {"REDIS_ADDR=" + slow}}
	}})
	e.keepVersions()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const typ = "withdraw_by_tag_with_payments"
	id, err := e.client.Records.Insert(ctx, typ, []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	// The copies come in bursts over about 1.5 s, so that some are being
	// dispatched when the report finishes (in 0.5 to 1 s).
	const bursts = 30
	ids := make([]int64, copies/bursts)
	for i := range ids {
		ids[i] = id
	}
	began := time.Now()
	published := make(chan struct{})
	go func() {
		defer close(published)
		for range bursts {
			publishBurst(ctx, t, e.iso.Queues()["TRIGGER_QUEUE"], ids)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	<-published
	rec, err := e.client.Wait(ctx, id, nil)
	if err != nil {
		t.Fatalf("record %d: %v", id, err)
	}
	final := time.Since(began)

	// The trigger queue is FIFO: once a request made now is final, every
	// copy has been taken; then every Pub/Sub message settled means any
	// work a late copy started has ended.
	sentinel := e.request("withdraw_by_tag", seed.Params)
	if s := e.wait(sentinel, time.Minute); s.Status != record.Success {
		t.Fatalf("record %d requested after the copies: %s %q", sentinel, s.Status, s.FailReason)
	}
	waitUntil(ctx, t, "every Pub/Sub message acked", func() bool { return e.pubsubSettled() })

	if rec.Status != record.Success {
		t.Fatalf("record %d: %s %q, want SUCCESS", id, rec.Status, rec.FailReason)
	}
	got, err := e.client.Fetch(ctx, rec.FilePath)
	if err != nil {
		t.Fatal(err)
	}
	want := seed.Golden(seed.GoldenWithdrawByTagWithPayments)
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("CSV differs from the reference (-want +got):\n%s", diff)
	}
	if rows := int64(strings.Count(string(got), "\n") - 1); rows != rec.RowCount {
		t.Errorf("the object has %d rows, the record's row_count is %d", rows, rec.RowCount)
	}
	if n := e.uploads(id); n != 1 {
		t.Errorf("%d object generations for record %d, want 1: a finished report ran again", n, id)
	}
	now, err := e.client.Records.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if now.Status != rec.Status || now.FilePath != rec.FilePath || now.RowCount != rec.RowCount || !now.UpdatedAt.Equal(rec.UpdatedAt) {
		t.Errorf("record changed after it was final: %+v -> %+v", rec, now)
	}
	if e.hashExists(id) {
		t.Errorf("record %d: hash left in Redis", id)
	}
	if parked := e.parked(); len(parked) != 0 {
		t.Errorf("%d triggers parked, want none; first: %q", len(parked), parked[0].Body)
	}
	if got := e.stack.Relay.Stats(topology.SubDeadLetter).Posts; got != 0 {
		t.Errorf("%d pushes to DeadLetter, want none", got)
	}

	// How many copies dispatched: each published stage 1 again.
	stage1 := map[string]bool{}
	for _, d := range pushes.list() {
		if d.Subscription == "listen-withdraw" && d.Attributes[message.AttrStage] == "1" && d.Attributes[message.AttrRecordID] == strconv.FormatInt(id, 10) {
			stage1[d.MessageID] = true
		}
	}
	t.Logf("%d copies of one trigger: SUCCESS after %v with %d rows; %d stage-1 dispatches; %d object generation(s)",
		copies, final.Round(time.Millisecond), rec.RowCount, len(stage1), e.uploads(id))
}

// startSlowProxy forwards TCP connections to target, holding back every
// read from the client by delay before passing it on; replies pass at
// once. It returns the proxy's address.
func startSlowProxy(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() {
				defer up.Close()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						select {
						case <-time.After(delay):
						case <-done:
							return
						}
						if _, werr := up.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				_, _ = io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}
