package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// privateRedis is a redis-server of the test's own, on its own port,
// without persistence: killing it loses every key, as a Memorystore
// failover without replication would.
type privateRedis struct {
	t    *testing.T
	dir  string
	addr string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &privateRedis{t: t, dir: t.TempDir(), addr: addr}
	r.start()
	t.Cleanup(func() {
		if r.cmd != nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

// start runs redis-server on r's port and waits until it answers PING.
func (r *privateRedis) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitUntil(ctx, r.t, "the private redis-server to answer PING", func() bool { return ping(r.addr) == nil })
}

// kill ends redis-server with SIGKILL, losing its data.
func (r *privateRedis) kill() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatalf("kill redis-server: %v", err)
	}
	_ = r.cmd.Wait() // "signal: killed"
	r.cmd = nil
}

// ping speaks RESP itself: go-redis would log every refused dial.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING: %q", line)
	}
	return nil
}

// Redis restarted mid-report with its data lost. Every process of the
// stack uses a private redis-server. Six reports (three of each type) are
// requested while one function is held (SIGSTOP), so that all are in
// flight; once each report's hash shows the progress expected, Redis is
// killed with SIGKILL, the held function is let go, and once one of its
// pushes has failed against the dead server, Redis is started again,
// empty. Every report must end FAILED with "report state lost", with
// nothing uploaded and no key left, before the dead-letter budget: none
// hangs, none is SUCCESS with a partial CSV.
//
// Held listener: the listener finds the hash missing and tells the
// aggregator, which fails the record. Held aggregator: the aggregator
// finds it missing itself.
func TestRedisRestartFailsReportsInFlight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hold string // entry point stopped while Redis restarts
		done int64  // queryDoneCount each hash shows before the restart
	}{
		{"listener held", "ListenWithdraw", 1},
		{"aggregator held", topology.EntryAggregate, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const perType = 3
			r := startPrivateRedis(t)
			var pushes deliveries
			e := newEnv(t, options{backoff: 500 * time.Millisecond, observe: pushes.add, envFor: func(*env) map[string][]string {
				// The sweeper too: on another Redis it would fail these
				// PROCESSING records itself, for want of their hashes.
				vars := map[string][]string{stack.DrainTriggers: {"REDIS_ADDR=" + r.addr}, stack.Sweep: {"REDIS_ADDR=" + r.addr}}
				for _, f := range topology.Functions() {
					vars[f.EntryPoint] = []string{"REDIS_ADDR=" + r.addr}
				}
				return vars
			}})
			e.keepVersions()
			rdb := redis.NewClient(&redis.Options{Addr: r.addr})
			t.Cleanup(func() { rdb.Close() })
			st := state.New(rdb, e.iso.KeyPrefix(), 10*time.Minute)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			pid := e.stack.PID(tt.hold)
			if pid <= 0 {
				t.Fatalf("no process for %s", tt.hold)
			}
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			resumed := false
			resume := func() {
				if !resumed {
					resumed = true
					if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
						t.Errorf("SIGCONT %s: %v", tt.hold, err)
					}
				}
			}
			t.Cleanup(resume)

			types := []string{"withdraw_by_tag", "withdraw_by_tag_with_payments"}
			var ids []int64
			for i := range 2 * perType {
				ids = append(ids, e.request(types[i%2], seed.Params))
			}
			for _, id := range ids {
				waitUntil(ctx, t, fmt.Sprintf("record %d's hash to count %d done", id, tt.done), func() bool {
					snap, err := st.Read(ctx, id, nil)
					return err == nil && snap.DoneCount >= tt.done
				})
			}
			for _, id := range ids {
				if rec, err := e.client.Records.Get(ctx, id); err != nil || rec.Status != record.Processing {
					t.Fatalf("record %d before the restart: %+v, %v; want PROCESSING", id, rec, err)
				}
			}
			before := len(pushes.list())
			killed := time.Now()
			r.kill()
			// Let the held function meet Redis down first: its pushes fail
			// (connection refused) and are retried after the backoff.
			resume()
			waitUntil(ctx, t, "a push to fail while Redis is down", func() bool {
				for _, d := range pushes.list()[before:] {
					if !d.Acked {
						return true
					}
				}
				return false
			})
			r.start()
			restarted := time.Now()

			var last time.Duration
			for _, id := range ids {
				rec, err := e.client.Wait(ctx, id, nil)
				if err != nil {
					t.Fatalf("record %d: %v", id, err)
				}
				last = max(last, time.Since(restarted))
				if rec.Status != record.Failed || !strings.HasPrefix(rec.FailReason, "report state lost") {
					t.Errorf("record %d: %s %q; want FAILED with \"report state lost\"", id, rec.Status, rec.FailReason)
				}
				if n := e.uploads(id); n != 0 {
					t.Errorf("record %d: %d uploads, want none", id, n)
				}
			}
			waitUntil(ctx, t, "every Pub/Sub message acked", func() bool { return e.pubsubSettled() })
			keys, err := rdb.Keys(ctx, e.iso.KeyPrefix()+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 0 {
				t.Errorf("keys left in Redis: %v", keys)
			}
			if got := e.stack.Relay.Stats(topology.SubDeadLetter).Posts; got != 0 {
				t.Errorf("%d pushes to DeadLetter, want none: a report waited out its retries", got)
			}

			after := pushes.list()[before:]
			bySub := map[string]int{}
			failed, maxAttempt := 0, int32(0)
			for _, d := range after {
				bySub[d.Subscription]++
				if !d.Acked {
					failed++
				}
				maxAttempt = max(maxAttempt, d.Attempt)
			}
			if maxAttempt >= 6 {
				t.Errorf("a push reached delivery attempt %d: past the retry budget", maxAttempt)
			}
			t.Logf("%s: Redis down %v; %d reports all FAILED \"report state lost\" within %v of the restart; %d pushes after the kill (%d not acked, highest attempt %d): %v",
				tt.hold, restarted.Sub(killed).Round(time.Millisecond), len(ids), last.Round(time.Millisecond), len(after), failed, maxAttempt, bySub)
		})
	}
}

// A key of the wrong type at FileDownloadRecordEntity-{ID} (hostile-
// upstream finding): WRONGTYPE on every attempt, the record FAILED only
// when the key expired ten minutes later, with a reason hiding the cause,
// and DrainTriggers had put a TTL on the key. Now DrainTriggers refuses to dispatch
// onto it: FAILED at once naming the cause, nothing run, and the key
// exactly as it was, without a TTL.
func TestKeyOfWrongTypeFailsAtOnce(t *testing.T) {
	t.Parallel()
	var pushes deliveries
	e := newEnv(t, options{observe: pushes.add})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := e.client.Records.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	key := e.client.State.Key(id)
	if err := e.rdb.Set(ctx, key, "another program's value", 0).Err(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	publishBurst(ctx, t, e.iso.Queues()["TRIGGER_QUEUE"], []int64{id})
	rec := e.wait(id, time.Minute)
	took := time.Since(began)
	if rec.Status != record.Failed || !strings.Contains(rec.FailReason, "is a Redis string, not a hash; refusing to dispatch onto it") {
		t.Errorf("record %d: %s %q; want FAILED naming the key of the wrong type", id, rec.Status, rec.FailReason)
	}
	if v, err := e.rdb.Get(ctx, key).Result(); err != nil || v != "another program's value" {
		t.Errorf("key after the report: %q, %v; want it unchanged", v, err)
	}
	if pttl := e.rdb.PTTL(ctx, key).Val(); pttl != -1 {
		t.Errorf("key's PTTL %v, want -1: no TTL on a key we did not create", pttl)
	}
	for _, d := range pushes.list() {
		if d.Attributes[message.AttrRecordID] == strconv.FormatInt(id, 10) {
			t.Errorf("push for record %d to %s: nothing should run", id, d.Subscription)
		}
	}
	if parked := e.parked(); len(parked) != 0 {
		t.Errorf("%d triggers parked, want none", len(parked))
	}
	t.Logf("FAILED %v after the trigger: %q", took.Round(time.Millisecond), rec.FailReason)
}
