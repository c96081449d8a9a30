// Package relay turns the Pub/Sub emulator's pull subscriptions into push
// subscriptions: it pulls from each subscription and POSTs the JSON that
// Pub/Sub's push delivery would send to the function's HTTP server, with
// the production retry backoff, deliveryAttempt and dead-lettering.
//
// pstest (the emulator) counts deliveries per published message, not per
// subscription: on a fan-out topic every subscription's pulls add to one
// counter, so the second listener sees deliveryAttempt 2 on its first
// delivery and pstest dead-letters after fewer than MaxDeliveryAttempts of
// its attempts. It also dead-letters under the original message ID, so two
// subscriptions dead-lettering one message collide on the dead-letter topic.
// The relay therefore keeps a failed message leased, waits out the backoff
// itself and redelivers it, counting attempts per subscription; after the
// subscription's MaxDeliveryAttempts it publishes the message to the
// dead-letter topic itself (a new message, with the CloudPubSubDeadLetter*
// attributes production adds) and acks the original. pstest's own
// dead-letter policy stays in place as a backstop for messages whose lease
// lapses (a relay restart).
package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pubsub "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Route sends one subscription's messages to one function.
type Route struct {
	Subscription string // short name, after any prefix: "t1-aggregate"
	URL          string // the function's functions-framework server
	// Ready, if set, is called before each POST and returns once the
	// function is up. A push that arrives while Cloud Run replaces a
	// crashed instance waits for the new one instead of failing; the
	// relay waits at most ColdStartWait, then POSTs anyway. Only a push
	// that was in flight when the instance died fails.
	Ready func(ctx context.Context) error
}

// ColdStartWait bounds how long a push waits for Route.Ready: about how
// long Cloud Run holds a request for an instance to start.
const ColdStartWait = 10 * time.Second

// Relay pulls from the emulator and pushes to the functions.
type Relay struct {
	Emulator string // Pub/Sub emulator host:port
	Project  string
	Routes   []Route
	// Backoff is the wait between a failed delivery and the next one.
	// Zero means the subscription's retry policy minimum backoff, else
	// topology.BackoffSeconds.
	Backoff time.Duration
	// Concurrency is the number of POSTs in flight per route (default 8).
	// Messages waiting out their backoff do not take a slot.
	Concurrency int
	// RequestTimeout bounds one POST; a timeout is a failed delivery. Zero
	// means the subscription's ack deadline, which is what bounds a push
	// request in production.
	RequestTimeout time.Duration
	// Duplicate is fault injection: every delivery is POSTed twice,
	// concurrently, and counts as acked if either POST succeeded.
	Duplicate bool
	Logger    *slog.Logger // default slog.Default()
	// Observe, if set, is called after every POST with its outcome, on
	// the delivering goroutine (keep it quick). Tests and measurements
	// use it to follow each message's deliveries.
	Observe func(Delivery)

	mu       sync.Mutex
	counters map[string]*counters
}

// Stats counts one route's traffic since the Relay was created.
type Stats struct {
	Posts        int64 // HTTP POSTs sent (two per delivery in Duplicate mode)
	InFlight     int64 // POSTs sent and not answered yet
	Acked        int64 // messages acked after a successful delivery
	Nacked       int64 // failed deliveries (each one retried or dead-lettered)
	DeadLettered int64 // messages published to the dead-letter topic
}

// Delivery is one POST of a message to a function, as Observe sees it.
type Delivery struct {
	Subscription string // short name
	MessageID    string
	Attributes   map[string]string // the message's; do not modify
	Attempt      int32             // deliveryAttempt, counted per subscription
	Start, End   time.Time
	Status       int   // HTTP status; 0 when there was no response
	Err          error // no response: refused, reset, timed out
	Acked        bool  // Status is one Pub/Sub push treats as an ack
}

type counters struct {
	posts, inFlight, acked, nacked, deadLettered atomic.Int64
}

// Stats returns the counters of the route for subscription (short name).
func (r *Relay) Stats(subscription string) Stats {
	c := r.countersFor(subscription)
	return Stats{
		Posts:        c.posts.Load(),
		InFlight:     c.inFlight.Load(),
		Acked:        c.acked.Load(),
		Nacked:       c.nacked.Load(),
		DeadLettered: c.deadLettered.Load(),
	}
}

func (r *Relay) countersFor(sub string) *counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counters == nil {
		r.counters = map[string]*counters{}
	}
	c := r.counters[sub]
	if c == nil {
		c = &counters{}
		r.counters[sub] = c
	}
	return c
}

const (
	defaultConcurrency = 8
	// idlePoll is the pause after an empty pull, so an idle relay does not
	// spin while a new message still goes out within a few tens of ms.
	idlePoll = 20 * time.Millisecond
	// leaseMargin is added to every lease the relay takes, so the emulator
	// does not redeliver a message the relay is still working on.
	leaseMargin = 10 * time.Second
	// maxLease is Pub/Sub's limit on ModifyAckDeadline.
	maxLease = 600 * time.Second
	// maxResponseDrain bounds how much of a response body is read so the
	// connection can be reused.
	maxResponseDrain = 64 << 10
)

// route is a Route with what the relay learnt about its subscription.
type route struct {
	Route
	full            string
	backoff         time.Duration
	timeout         time.Duration
	ackDeadline     time.Duration
	maxAttempts     int32  // 0: no dead-letter policy, retry forever
	deadLetterTopic string // full name
	c               *counters

	mu       sync.Mutex
	attempts map[string]int32 // message ID → deliveries made so far
}

// nextAttempt records one more delivery of message id and returns its number.
func (rt *route) nextAttempt(id string) int32 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.attempts[id]++
	return rt.attempts[id]
}

func (rt *route) forget(id string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	delete(rt.attempts, id)
}

// run is the state of one Run call.
type run struct {
	r           *Relay
	log         *slog.Logger
	sc          *pubsub.SubscriptionAdminClient
	tc          *pubsub.TopicAdminClient
	hc          *http.Client
	concurrency int
}

// Run relays until ctx is cancelled, then returns nil once every in-flight
// POST has been abandoned. Messages it was holding are left leased; the
// emulator redelivers them when the lease lapses. It returns an error only
// when it cannot start: a bad configuration, or a subscription that does
// not exist.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.validate(); err != nil {
		return err
	}
	x := &run{r: r, log: r.Logger, concurrency: r.Concurrency}
	if x.log == nil {
		x.log = slog.Default()
	}
	if x.concurrency <= 0 {
		x.concurrency = defaultConcurrency
	}
	opts := emulators.PubSubOptions(r.Emulator)
	var err error
	if x.sc, err = pubsub.NewSubscriptionAdminClient(ctx, opts...); err != nil {
		return fmt.Errorf("pubsub.NewSubscriptionAdminClient(%s): %w", r.Emulator, err)
	}
	defer x.sc.Close()
	if x.tc, err = pubsub.NewTopicAdminClient(ctx, opts...); err != nil {
		return fmt.Errorf("pubsub.NewTopicAdminClient(%s): %w", r.Emulator, err)
	}
	defer x.tc.Close()

	routes := make([]*route, 0, len(r.Routes))
	for _, rc := range r.Routes {
		rt, err := x.describe(ctx, rc)
		if err != nil {
			return err
		}
		routes = append(routes, rt)
	}

	// Functions run locally: never go through an HTTP proxy from the
	// environment; keep enough idle connections for every slot.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = 2 * x.concurrency
	x.hc = &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()

	var wg sync.WaitGroup
	for _, rt := range routes {
		x.log.Info("relay route", "subscription", rt.Subscription, "url", rt.URL,
			"backoff", rt.backoff, "request_timeout", rt.timeout,
			"max_delivery_attempts", rt.maxAttempts, "dead_letter_topic", rt.deadLetterTopic)
		wg.Go(func() { x.pullLoop(ctx, rt) })
	}
	wg.Wait()
	return nil
}

func (r *Relay) validate() error {
	if r.Emulator == "" || r.Project == "" {
		return errors.New("relay: Emulator and Project are required")
	}
	if len(r.Routes) == 0 {
		return errors.New("relay: no routes")
	}
	seen := map[string]bool{}
	for _, rc := range r.Routes {
		if rc.Subscription == "" {
			return errors.New("relay: route without subscription")
		}
		if seen[rc.Subscription] {
			// Two loops on one subscription would split its messages.
			return fmt.Errorf("relay: subscription %s routed twice", rc.Subscription)
		}
		seen[rc.Subscription] = true
		if u, err := url.Parse(rc.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("relay: route %s: bad URL %q", rc.Subscription, rc.URL)
		}
	}
	return nil
}

// describe reads the subscription's ack deadline and policies.
func (x *run) describe(ctx context.Context, rc Route) (*route, error) {
	full := emulators.SubscriptionName(x.r.Project, rc.Subscription)
	sub, err := x.sc.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: full})
	if err != nil {
		return nil, fmt.Errorf("relay: GetSubscription(%s): %w", full, err)
	}
	rt := &route{
		Route:       rc,
		full:        full,
		ackDeadline: time.Duration(sub.AckDeadlineSeconds) * time.Second,
		c:           x.r.countersFor(rc.Subscription),
		attempts:    map[string]int32{},
	}
	if rt.ackDeadline <= 0 {
		rt.ackDeadline = 10 * time.Second // the emulator's default
	}
	rt.timeout = x.r.RequestTimeout
	if rt.timeout <= 0 {
		rt.timeout = rt.ackDeadline
	}
	rt.backoff = x.r.Backoff
	if rt.backoff <= 0 {
		rt.backoff = sub.GetRetryPolicy().GetMinimumBackoff().AsDuration()
	}
	if rt.backoff <= 0 {
		rt.backoff = topology.BackoffSeconds * time.Second
	}
	if p := sub.GetDeadLetterPolicy(); p != nil && p.DeadLetterTopic != "" {
		rt.deadLetterTopic = p.DeadLetterTopic
		rt.maxAttempts = p.MaxDeliveryAttempts
		if rt.maxAttempts <= 0 {
			rt.maxAttempts = 5 // Pub/Sub's default
		}
	}
	return rt, nil
}

// pullLoop pulls as many messages as there are free slots and hands each
// to its own goroutine, until ctx is cancelled.
func (x *run) pullLoop(ctx context.Context, rt *route) {
	// A token in slots is a POST in flight (or about to be).
	slots := make(chan struct{}, x.concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	failures := 0
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	take:
		for n < x.concurrency {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break take
			}
		}
		resp, err := x.sc.Pull(ctx, &pubsubpb.PullRequest{
			Subscription: rt.full,
			MaxMessages:  int32(n),
			// pstest otherwise holds an empty pull for 500 ms and only
			// looks again at the end; polling is quicker to notice work.
			ReturnImmediately: true,
		})
		msgs := resp.GetReceivedMessages()
		for range n - len(msgs) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait := min(time.Duration(failures)*250*time.Millisecond, 5*time.Second)
			x.log.Warn("relay pull failed", "subscription", rt.Subscription, "retry_in", wait, "err", err)
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		failures = 0
		if len(msgs) == 0 {
			if !sleep(ctx, idlePoll) {
				return
			}
			continue
		}
		for _, m := range msgs {
			wg.Go(func() { x.deliver(ctx, rt, m, slots) })
		}
	}
}

// deliver pushes one pulled message until it is acked or dead-lettered.
// It starts holding one slot of slots.
func (x *run) deliver(ctx context.Context, rt *route, rm *pubsubpb.ReceivedMessage, slots chan struct{}) {
	held := true
	release := func() {
		if held {
			<-slots
			held = false
		}
	}
	defer release()
	id := rm.GetMessage().GetMessageId()
	log := x.log.With("subscription", rt.Subscription, "message_id", id)
	for {
		attempt := rt.nextAttempt(id)
		// The pull leased the message for the ack deadline; a retry, or a
		// POST allowed to outlast that deadline, needs a lease of its own.
		if attempt > 1 || rt.timeout > rt.ackDeadline {
			x.lease(ctx, rt, rm.AckId, rt.timeout+leaseMargin, log)
		}
		x.waitReady(ctx, rt, log)
		ok := x.push(ctx, rt, rm, attempt, log)
		release()
		if ctx.Err() != nil {
			return // shutting down: the lease lapses and the emulator redelivers
		}
		if ok {
			rt.c.acked.Add(1)
			rt.forget(id)
			x.ack(ctx, rt, rm.AckId, log)
			return
		}
		rt.c.nacked.Add(1)
		if rt.maxAttempts > 0 && attempt >= rt.maxAttempts {
			x.deadLetter(ctx, rt, rm, attempt, log)
			return
		}
		// Keep the message leased through the backoff: letting the
		// emulator redeliver it would bump its shared delivery counter.
		x.lease(ctx, rt, rm.AckId, rt.backoff+leaseMargin, log)
		if !sleep(ctx, rt.backoff) {
			return
		}
		select {
		case slots <- struct{}{}:
			held = true
		case <-ctx.Done():
			return
		}
	}
}

// waitReady holds a push while the route's function is down, at most
// ColdStartWait (and never past the message's lease).
func (x *run) waitReady(ctx context.Context, rt *route, log *slog.Logger) {
	if rt.Ready == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, min(ColdStartWait, rt.timeout))
	defer cancel()
	if err := rt.Ready(ctx); err != nil && ctx.Err() == nil {
		log.Warn("relay: function not ready; pushing anyway", "url", rt.URL, "err", err)
	}
}

// push POSTs one delivery (twice in Duplicate mode) and reports whether
// the function acked it.
func (x *run) push(ctx context.Context, rt *route, rm *pubsubpb.ReceivedMessage, attempt int32, log *slog.Logger) bool {
	m := rm.GetMessage()
	pt := m.GetPublishTime().AsTime().UTC().Format(time.RFC3339Nano)
	b := message.Envelope{
		Message: message.PushMessage{
			Data:        m.GetData(),
			Attributes:  m.GetAttributes(),
			MessageID:   m.GetMessageId(),
			MessageID2:  m.GetMessageId(),
			PublishTime: pt,
			PublishOld:  pt,
			OrderingKey: m.GetOrderingKey(),
		},
		Subscription: rt.full,
	}
	if rt.maxAttempts > 0 {
		b.DeliveryAttempt = int(attempt)
	}
	body, err := json.Marshal(b)
	if err != nil {
		log.Error("relay cannot encode push body", "err", fmt.Errorf("json.Marshal: %w", err))
		return false
	}
	n := 1
	if x.r.Duplicate {
		n = 2
	}
	results := make(chan bool, n)
	for range n {
		go func() { results <- x.post(ctx, rt, m, body, attempt, log) }()
	}
	ok := false
	for range n {
		ok = <-results || ok
	}
	return ok
}

// post sends one POST and reports whether the status means ack.
func (x *run) post(ctx context.Context, rt *route, m *pubsubpb.PubsubMessage, body []byte, attempt int32, log *slog.Logger) bool {
	d := Delivery{Subscription: rt.Subscription, MessageID: m.GetMessageId(), Attributes: m.GetAttributes(),
		Attempt: attempt, Start: time.Now()}
	rt.c.posts.Add(1)
	rt.c.inFlight.Add(1)
	defer func() {
		rt.c.inFlight.Add(-1)
		if x.r.Observe != nil {
			d.End = time.Now()
			x.r.Observe(d)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rt.URL, bytes.NewReader(body))
	if err != nil {
		d.Err = fmt.Errorf("http.NewRequest(%s): %w", rt.URL, err)
		log.Error("relay cannot build request", "err", d.Err)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := x.hc.Do(req)
	if err != nil {
		// Function down, slow or crashed mid-request: a nack, as in production.
		d.Err = err
		if !errors.Is(ctx.Err(), context.Canceled) { // not the stack shutting down (a timeout is still a failure)
			log.Warn("relay push failed", "url", rt.URL, "attempt", attempt, "err", err)
		}
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	resp.Body.Close()
	d.Status = resp.StatusCode
	if !isAck(resp.StatusCode) {
		log.Info("relay push nacked", "url", rt.URL, "attempt", attempt, "status", resp.StatusCode)
		return false
	}
	d.Acked = true
	log.Debug("relay push acked", "url", rt.URL, "attempt", attempt, "status", resp.StatusCode)
	return true
}

// isAck reports whether Pub/Sub push treats status as an acknowledgement;
// it accepts exactly these codes, not every 2xx.
func isAck(status int) bool {
	switch status {
	case http.StatusProcessing, http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNoContent:
		return true
	}
	return false
}

// deadLetter forwards the message to the dead-letter topic as Pub/Sub
// does, then acks it. A failed publish is retried after the backoff; the
// message is never acked before it is safely on the dead-letter topic.
func (x *run) deadLetter(ctx context.Context, rt *route, rm *pubsubpb.ReceivedMessage, attempts int32, log *slog.Logger) {
	m := rm.GetMessage()
	attrs := maps.Clone(m.GetAttributes())
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs[message.AttrDeadLetterDeliveryCount] = strconv.Itoa(int(attempts))
	attrs[message.AttrDeadLetterSubscription] = rt.Subscription
	attrs[message.AttrDeadLetterSubscriptionProject] = x.r.Project
	attrs[message.AttrDeadLetterTopicPublishTime] = m.GetPublishTime().AsTime().UTC().Format(time.RFC3339Nano)
	req := &pubsubpb.PublishRequest{
		Topic:    rt.deadLetterTopic,
		Messages: []*pubsubpb.PubsubMessage{{Data: m.GetData(), Attributes: attrs, OrderingKey: m.GetOrderingKey()}},
	}
	for {
		x.lease(ctx, rt, rm.AckId, rt.backoff+leaseMargin, log)
		resp, err := x.tc.Publish(ctx, req)
		if err == nil {
			rt.c.deadLettered.Add(1)
			rt.forget(m.GetMessageId())
			log.Warn("relay dead-lettered message", "attempts", attempts,
				"dead_letter_topic", rt.deadLetterTopic, "dead_letter_id", resp.GetMessageIds())
			x.ack(ctx, rt, rm.AckId, log)
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Error("relay cannot dead-letter, retrying", "retry_in", rt.backoff,
			"err", fmt.Errorf("Publish(%s): %w", rt.deadLetterTopic, err))
		if !sleep(ctx, rt.backoff) {
			return
		}
	}
}

func (x *run) ack(ctx context.Context, rt *route, ackID string, log *slog.Logger) {
	err := x.sc.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: rt.full, AckIds: []string{ackID}})
	if err != nil && ctx.Err() == nil {
		// The lease lapses and the message comes again: at least once.
		log.Error("relay ack failed", "err", fmt.Errorf("Acknowledge(%s): %w", rt.full, err))
	}
}

// lease extends the message's ack deadline to d from now.
func (x *run) lease(ctx context.Context, rt *route, ackID string, d time.Duration, log *slog.Logger) {
	secs := int32(math.Ceil(min(d, maxLease).Seconds()))
	err := x.sc.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
		Subscription: rt.full, AckIds: []string{ackID}, AckDeadlineSeconds: max(secs, 1),
	})
	if err != nil && ctx.Err() == nil {
		log.Warn("relay cannot extend lease", "err", fmt.Errorf("ModifyAckDeadline(%s): %w", rt.full, err))
	}
}

// sleep waits d and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
