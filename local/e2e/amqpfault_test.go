package e2e

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// amqpProxy forwards TCP connections to RabbitMQ and can cut them all,
// as a network failure would, without touching any connection that does
// not pass through it. It reads the AMQP frames going by, to count the
// deliveries the broker sent and the client settled, and can cut at the
// moment the client holds a given number of unsettled deliveries.
type amqpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu          sync.Mutex
	conns       map[*proxyConn]bool
	accepted    int
	delivered   int // Basic.Deliver frames from the broker
	redelivered int // ... with the redelivered flag
	cutAt       int // > 0: cut when a connection has this many unsettled
	cutDone     chan int
	refusing    bool // reset every new connection at once, as a stopped broker would
	refused     int  // connections reset while refusing
}

// proxyConn is one proxied connection and its unsettled deliveries.
type proxyConn struct {
	client, upstream   net.Conn
	delivered, settled int
}

func startProxy(t *testing.T, target string) *amqpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &amqpProxy{ln: ln, target: target, conns: map[*proxyConn]bool{}}
	p.wg.Go(p.serve)
	// Registered before the stack starts, so it runs after DrainTriggers stopped.
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *amqpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		p.mu.Lock()
		refuse := p.refusing
		if refuse {
			p.refused++
		}
		p.mu.Unlock()
		if refuse {
			// SO_LINGER 0: the close sends a TCP reset, so the client's
			// dial fails before the AMQP handshake, as against a broker
			// whose port is closed.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{client: c, upstream: up}
		p.mu.Lock()
		p.conns[pc] = true
		p.accepted++
		p.mu.Unlock()
		done := make(chan struct{}, 2)
		pipe := func(dst, src net.Conn, f *amqpFrames) {
			_, _ = io.Copy(dst, io.TeeReader(src, f))
			done <- struct{}{}
		}
		// The client starts with the 8-byte protocol header, then frames.
		p.wg.Go(func() {
			pipe(up, c, &amqpFrames{skip: 8, method: func(class, method uint16, _ []byte) { p.fromClient(pc, class, method) }})
		})
		p.wg.Go(func() {
			pipe(c, up, &amqpFrames{method: func(class, method uint16, args []byte) { p.fromBroker(pc, class, method, args) }})
		})
		p.wg.Go(func() {
			<-done // either side ended: end both
			c.Close()
			up.Close()
			<-done
			p.mu.Lock()
			delete(p.conns, pc)
			p.mu.Unlock()
		})
	}
}

// AMQP 0-9-1 class and method IDs the proxy counts.
const (
	classBasic    = 60
	methodDeliver = 60
	methodAck     = 80
	methodReject  = 90
	methodNack    = 120
)

func (p *amqpProxy) fromBroker(pc *proxyConn, class, method uint16, args []byte) {
	if class != classBasic || method != methodDeliver {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pc.delivered++
	p.delivered++
	// consumer-tag (short string), delivery-tag (8 bytes), redelivered (bit).
	if len(args) > 0 {
		if i := 1 + int(args[0]) + 8; i < len(args) && args[i]&1 == 1 {
			p.redelivered++
		}
	}
	if p.cutAt > 0 && pc.delivered-pc.settled >= p.cutAt {
		// Cut before this frame goes on: the client holds the earlier
		// ones unsettled, the broker counts all of them delivered.
		p.cutAt = 0
		p.cutDone <- pc.delivered - pc.settled
		p.cutLocked()
	}
}

func (p *amqpProxy) fromClient(pc *proxyConn, class, method uint16) {
	if class == classBasic && (method == methodAck || method == methodNack || method == methodReject) {
		p.mu.Lock()
		pc.settled++ // DrainTriggers settles one delivery at a time
		p.mu.Unlock()
	}
}

// cutWhenUnsettled arms a cut of every connection for the next delivery
// that leaves one of them with at least n deliveries unsettled; the
// channel then gets how many it had (more than n if the client was still
// busy with earlier ones when the cut was armed).
func (p *amqpProxy) cutWhenUnsettled(n int) <-chan int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAt = n
	p.cutDone = make(chan int, 1)
	return p.cutDone
}

// cut closes every proxied connection, both sides.
func (p *amqpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked()
}

// cutLocked closes every connection; p.mu is held.
func (p *amqpProxy) cutLocked() {
	for pc := range p.conns {
		pc.client.Close()
		pc.upstream.Close()
		delete(p.conns, pc)
	}
}

// refuse makes the proxy reset every new connection (on) or forward
// them again (off); connections already open are left alone (cut them).
func (p *amqpProxy) refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = on
}

// proxyStats is what went through the proxy so far.
type proxyStats struct{ accepted, open, delivered, redelivered, refused int }

func (p *amqpProxy) stats() proxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return proxyStats{p.accepted, len(p.conns), p.delivered, p.redelivered, p.refused}
}

// url is amqpURL with its host replaced by the proxy's address.
func (p *amqpProxy) url(amqpURL string) string {
	u, err := url.Parse(amqpURL)
	if err != nil {
		panic(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// amqpFrames splits one direction of an AMQP connection into frames and
// calls method for each method frame. It never fails: it only watches.
type amqpFrames struct {
	skip   int // bytes to pass over first (the client's protocol header)
	buf    []byte
	method func(class, method uint16, args []byte)
}

func (f *amqpFrames) Write(b []byte) (int, error) {
	f.buf = append(f.buf, b...)
	if f.skip > 0 {
		n := min(f.skip, len(f.buf))
		f.buf, f.skip = f.buf[n:], f.skip-n
	}
	// A frame: type (1), channel (2), size (4), payload (size), 0xCE.
	for len(f.buf) >= 7 {
		size := int(binary.BigEndian.Uint32(f.buf[3:7]))
		if len(f.buf) < 8+size {
			break
		}
		if payload := f.buf[7 : 7+size]; f.buf[0] == 1 && size >= 4 {
			f.method(binary.BigEndian.Uint16(payload), binary.BigEndian.Uint16(payload[2:]), payload[4:])
		}
		f.buf = f.buf[8+size:]
	}
	return len(b), nil
}

// RabbitMQ connections cut while triggers flow: DrainTriggers' connection
// goes through a proxy of this test's own, which cuts it four times while
// 40 triggers arrive in four bursts, each time at the moment DrainTriggers
// holds unsettled triggers of the burst. Those go back to the queue and
// come again; every record must end SUCCESS exactly once with the
// reference CSV, uploaded once, and nothing may be parked or dead-lettered.
func TestRabbitMQConnectionsCut(t *testing.T) {
	t.Parallel()
	const batches, perBatch = 4, 10
	began := time.Now()
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	var pushes deliveries
	e := newEnv(t, options{observe: pushes.add, envFor: func(*env) map[string][]string {
		return map[string][]string{"draintriggers": {"AMQP_URL=" + proxy.url(amqpURL)}}
	}})
	e.keepVersions()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	type job struct {
		typ, golden string
		id          int64
	}
	types := []job{{typ: "withdraw_by_tag", golden: seed.GoldenWithdrawByTag}, {typ: "withdraw_by_tag_with_payments", golden: seed.GoldenWithdrawByTagWithPayments}}
	var jobs []*job
	var cuts []time.Time
	unsettledAtCuts := 0
	for b := range batches {
		// Cut a live session each time: wait for DrainTriggers to have
		// connected again after the previous cut.
		waitUntil(ctx, t, "DrainTriggers to connect through the proxy", func() bool {
			st := proxy.stats()
			return st.open > 0 && st.accepted > b
		})
		batch := make([]*job, perBatch)
		ids := make([]int64, perBatch)
		for i := range batch {
			j := types[i%2]
			id, err := e.client.Records.Insert(ctx, j.typ, []byte(seed.Params))
			if err != nil {
				t.Fatal(err)
			}
			j.id, batch[i], ids[i] = id, &j, id
		}
		jobs = append(jobs, batch...)
		cut := proxy.cutWhenUnsettled(unsettledAtCut)
		publishBurst(ctx, t, e.iso.Queues()["TRIGGER_QUEUE"], ids)
		select {
		case n := <-cut:
			unsettledAtCuts += n
			cuts = append(cuts, time.Now())
		case <-ctx.Done():
			t.Fatalf("batch %d: DrainTriggers never held %d triggers unsettled: %v", b+1, unsettledAtCut, ctx.Err())
		}
	}

	recs := make([]record.Record, len(jobs))
	var lastFinal time.Time
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			rec, err := e.client.Wait(ctx, j.id, nil)
			if err != nil {
				t.Errorf("record %d: %v", j.id, err)
			}
			mu.Lock()
			recs[i] = rec
			if now := time.Now(); now.After(lastFinal) {
				lastFinal = now
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// A trigger requeued by a cut may still be on its way round. The queue
	// is FIFO, so once a request made now is final, every earlier trigger
	// has been taken; then wait for every Pub/Sub message to be settled,
	// so that any work a late trigger started has finished.
	sentinel := e.request("withdraw_by_tag", seed.Params)
	if rec := e.wait(sentinel, time.Minute); rec.Status != record.Success {
		t.Fatalf("record %d requested after the cuts: %s %q", sentinel, rec.Status, rec.FailReason)
	}
	waitUntil(ctx, t, "every Pub/Sub message acked", func() bool { return e.pubsubSettled() })

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
		if n := e.uploads(j.id); n != 1 {
			t.Errorf("record %d: %d uploads, want 1 (a report ran again after it finished?)", j.id, n)
		}
		now, err := e.client.Records.Get(ctx, j.id)
		if err != nil {
			t.Fatal(err)
		}
		if now.Status != rec.Status || now.FilePath != rec.FilePath || now.RowCount != rec.RowCount || !now.UpdatedAt.Equal(rec.UpdatedAt) {
			t.Errorf("record %d changed after it was final: %+v -> %+v", j.id, rec, now)
		}
		if e.hashExists(j.id) {
			t.Errorf("record %d: hash still in Redis", j.id)
		}
	}
	if parked := e.parked(); len(parked) != 0 {
		t.Errorf("%d triggers parked, want none; first: %q %v", len(parked), parked[0].Body, parked[0].Headers)
	}
	if got := e.stack.Relay.Stats(topology.SubDeadLetter).Posts; got != 0 {
		t.Errorf("%d pushes to DeadLetter, want none", got)
	}
	// The cuts bit: DrainTriggers reconnected after each, and every trigger
	// it held unsettled at a cut came to it again, marked redelivered.
	st := proxy.stats()
	if st.accepted < batches+1 {
		t.Errorf("DrainTriggers connected %d times through the proxy, want at least %d (once, then after each cut)", st.accepted, batches+1)
	}
	if st.redelivered < unsettledAtCuts {
		t.Errorf("%d redeliveries reached DrainTriggers, want at least the %d triggers unsettled at the cuts", st.redelivered, unsettledAtCuts)
	}

	// Duplicate dispatches: a trigger that came again while its record
	// was PROCESSING published stage 1 again; the pipeline absorbs those.
	stage1 := map[string]map[string]bool{} // recordId → stage-1 message IDs
	for _, d := range pushes.list() {
		if d.Subscription != "listen-withdraw" || d.Attributes[message.AttrStage] != "1" {
			continue
		}
		id := d.Attributes[message.AttrRecordID]
		if stage1[id] == nil {
			stage1[id] = map[string]bool{}
		}
		stage1[id][d.MessageID] = true
	}
	dispatches := map[int]int{}
	for _, j := range jobs {
		dispatches[len(stage1[strconv.FormatInt(j.id, 10)])]++
	}
	t.Logf("%d cuts with %d triggers unsettled in all; %d DrainTriggers connections, %d deliveries to it of which %d redelivered; stage-1 dispatches per record → records: %v",
		len(cuts), unsettledAtCuts, st.accepted, st.delivered, st.redelivered, dispatches)
	t.Logf("%d reports: all final %v after the last cut, %v after the first request; test %v",
		len(jobs), lastFinal.Sub(cuts[len(cuts)-1]).Round(time.Millisecond), lastFinal.Sub(began).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// unsettledAtCut is how many triggers DrainTriggers holds unsettled when the
// proxy cuts its connection: some it is dispatching, one it never got.
const unsettledAtCut = 3

// publishBurst publishes each ID to queue back to back on one connection
// straight to RabbitMQ (upstream's path is not the one cut), then waits
// for the broker's confirms, so DrainTriggers receives them as one burst.
func publishBurst(ctx context.Context, t *testing.T, queue string, ids []int64) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var confs []*amqp.DeferredConfirmation
	for _, id := range ids {
		c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false,
			amqp.Publishing{ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: []byte(strconv.FormatInt(id, 10))})
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, c)
	}
	for _, c := range confs {
		if ok, err := c.WaitContext(ctx); err != nil || !ok {
			t.Fatalf("publish not confirmed: %v", err)
		}
	}
}

// waitUntil polls cond until it holds, failing the test if ctx ends first.
func waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// pubsubSettled reports whether every message published so far has been
// acked on every push subscription of its topic.
func (e *env) pubsubSettled() bool {
	subs := map[string]int{} // full topic name → push subscriptions
	for _, f := range topology.Functions() {
		if f.Kind == topology.KindPush {
			subs["projects/e2e-project/topics/"+f.Topic]++
		}
	}
	for _, m := range e.stack.PubSub.Messages() {
		if m.Acks < subs[m.Topic] {
			return false
		}
	}
	return true
}

// RabbitMQ goes away and stays away for a while, as in a broker restart
// (`rabbitmqctl stop_app`, a few seconds, `start_app`): DrainTriggers' two
// connections (trigger consumer and completion forwarder) go through a
// proxy of this test's own, which closes them and then resets every new
// connection until it has refused each side several times, then lets
// them through again. A session that ended with a closed connection and
// a dial that was refused end with errors of different types: DrainTriggers
// once stored both in one atomic.Value and panicked. DrainTriggers must not
// exit (no restart by the stack's supervisor), and a trigger published
// during the outage must end SUCCESS with its completion event on the
// upstream's queue, as must one published before.
func TestRabbitMQRefusedAfterCut(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	e := newEnv(t, options{envFor: func(*env) map[string][]string {
		return map[string][]string{"draintriggers": {"AMQP_URL=" + proxy.url(amqpURL)}}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The upstream's side of the completion exchange, straight to RabbitMQ.
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := completion.Declare(ch, e.iso.CompletedExchange()); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil) // exclusive: gone with conn
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "", e.iso.CompletedExchange(), false, nil); err != nil {
		t.Fatal(err)
	}
	events := map[string]bool{}
	event := func(id int64) {
		t.Helper()
		want := completion.MessageID(strconv.FormatInt(id, 10), "SUCCESS")
		waitUntil(ctx, t, "completion event "+want, func() bool {
			for {
				d, ok, err := ch.Get(q.Name, true)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					return events[want]
				}
				events[d.MessageId] = true
			}
		})
	}
	report := func(when string) {
		t.Helper()
		id := e.request("withdraw_by_tag", seed.Params)
		if rec := e.wait(id, 2*time.Minute); rec.Status != record.Success {
			t.Fatalf("record %d requested %s: %s %q, want SUCCESS", id, when, rec.Status, rec.FailReason)
		}
		event(id)
	}

	waitUntil(ctx, t, "DrainTriggers' consumer and forwarder to connect through the proxy", func() bool { return proxy.stats().open >= 2 })
	report("before the outage")

	proxy.refuse(true)
	proxy.cut()
	// Both reconnect loops back off from 200 ms, doubling, with full
	// jitter: six refusals each take about 3 s (the first run of this
	// test, before the fix, saw DrainTriggers panic at its first refusal).
	const refusals = 12
	waitUntil(ctx, t, "DrainTriggers to be refused several times", func() bool { return proxy.stats().refused >= refusals })
	// Published straight to RabbitMQ while DrainTriggers cannot reach it.
	id := e.request("withdraw_by_tag", seed.Params)
	accepted := proxy.stats().accepted
	proxy.refuse(false)
	if rec := e.wait(id, 2*time.Minute); rec.Status != record.Success {
		t.Fatalf("record %d requested during the outage: %s %q, want SUCCESS", id, rec.Status, rec.FailReason)
	}
	event(id)
	report("after the outage")

	st := proxy.stats()
	if st.accepted < accepted+2 {
		t.Errorf("DrainTriggers connected %d times through the proxy after the outage, want at least 2 (consumer and forwarder)", st.accepted-accepted)
	}
	if n := e.stack.Restarts("draintriggers"); n != 0 {
		t.Errorf("DrainTriggers exited %d times and was restarted, want never; its log:\n%s", n, e.stack.Logs("draintriggers"))
	}
	t.Logf("%d connections refused; %d accepted in all", st.refused, st.accepted)
}
