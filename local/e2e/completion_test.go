package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pubsub "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/signing"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// signedTTL is the test's SIGNED_URL_TTL.
const signedTTL = 2 * time.Hour

// events receives the completion events of one run: a Pub/Sub
// subscription of the test's own on report-completed, and a queue of the
// test's own bound to the run's COMPLETED_EXCHANGE, as an upstream binds it.
type events struct {
	t       *testing.T
	sc      *pubsub.SubscriptionAdminClient
	sub     string
	amqp    <-chan amqp.Delivery
	timeout time.Duration
}

func listen(t *testing.T, e *env) *events {
	t.Helper()
	ctx := context.Background()
	project := "e2e-project"
	sc, err := pubsub.NewSubscriptionAdminClient(ctx, emulators.PubSubOptions(e.stack.PubSubAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	sub := emulators.SubscriptionName(project, "completion-test")
	if _, err := sc.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub,
		Topic: emulators.TopicName(project, topology.TopicCompleted), AckDeadlineSeconds: 30}); err != nil {
		t.Fatal(err)
	}

	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// DrainTriggers declares the exchange when it starts forwarding; declaring
	// it the same way first lets the queue be bound before any event.
	if err := completion.Declare(ch, e.iso.CompletedExchange()); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "", e.iso.CompletedExchange(), false, nil); err != nil {
		t.Fatal(err)
	}
	dl, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &events{t: t, sc: sc, sub: sub, amqp: dl, timeout: 60 * time.Second}
}

// nextPubSub returns the next event on the test's subscription.
func (ev *events) nextPubSub() *pubsubpb.PubsubMessage {
	ev.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ev.timeout)
	defer cancel()
	for {
		resp, err := ev.sc.Pull(ctx, &pubsubpb.PullRequest{Subscription: ev.sub, MaxMessages: 1})
		if err != nil {
			ev.t.Fatalf("no completion event on Pub/Sub: %v", err)
		}
		if len(resp.ReceivedMessages) == 0 {
			select {
			case <-ctx.Done():
				ev.t.Fatalf("no completion event on Pub/Sub within %s", ev.timeout)
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		m := resp.ReceivedMessages[0]
		if err := ev.sc.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: ev.sub, AckIds: []string{m.AckId}}); err != nil {
			ev.t.Fatal(err)
		}
		return m.Message
	}
}

// nextAMQP returns the next event on the bound queue.
func (ev *events) nextAMQP() amqp.Delivery {
	ev.t.Helper()
	select {
	case d, ok := <-ev.amqp:
		if !ok {
			ev.t.Fatal("the test's RabbitMQ consumer closed")
		}
		return d
	case <-time.After(ev.timeout):
		ev.t.Fatalf("no completion event on RabbitMQ within %s", ev.timeout)
	}
	return amqp.Delivery{}
}

// wantBody is the contract's body for rec, written out here rather than
// built by package completion; for a SUCCESS the downloadUrl, which
// differs between copies, is taken from got and checked separately.
func wantBody(t *testing.T, rec record.Record, got []byte) (body, link string) {
	t.Helper()
	at := rec.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000Z")
	if rec.Status == record.Failed {
		reason, _ := json.Marshal(rec.FailReason)
		return fmt.Sprintf(`{"v":1,"recordId":%d,"reportType":%q,"status":"FAILED","failReason":%s,"finishedAt":%q}`,
			rec.ID, rec.ReportType, reason, at), ""
	}
	var b struct {
		DownloadURL string `json:"downloadUrl"`
	}
	if err := json.Unmarshal(got, &b); err != nil {
		t.Fatalf("event body %s: %v", got, err)
	}
	var u bytes.Buffer
	enc := json.NewEncoder(&u)
	enc.SetEscapeHTML(false)
	enc.Encode(b.DownloadURL)
	return fmt.Sprintf(`{"v":1,"recordId":%d,"reportType":%q,"status":"SUCCESS","filePath":%q,"rowCount":%d,"finishedAt":%q,"downloadUrl":%s}`,
		rec.ID, rec.ReportType, rec.FilePath, rec.RowCount, at, strings.TrimSpace(u.String())), b.DownloadURL
}

// expect takes one event from each side and checks both against rec; it
// returns the body with the link cut out, to compare copies.
func (ev *events) expect(e *env, rec record.Record, golden string) string {
	t := ev.t
	t.Helper()
	// Delivery is at least once: a late duplicate of an earlier record's
	// event (a "done" message that reached the aggregator after the
	// record ended re-announces it) may come first; skip those.
	ps := ev.nextPubSub()
	for ps.Attributes["recordId"] != fmt.Sprint(rec.ID) {
		ps = ev.nextPubSub()
	}
	want, link := wantBody(t, rec, ps.Data)
	if string(ps.Data) != want {
		t.Errorf("Pub/Sub event\n got %s\nwant %s", ps.Data, want)
	}
	wantAttrs := map[string]string{"recordId": fmt.Sprint(rec.ID), "status": rec.Status.String()}
	for k, v := range wantAttrs {
		if ps.Attributes[k] != v {
			t.Errorf("Pub/Sub attribute %s = %q, want %q (all: %v)", k, ps.Attributes[k], v, ps.Attributes)
		}
	}
	mq := ev.nextAMQP()
	for mq.MessageId != fmt.Sprintf("%d-%s", rec.ID, rec.Status) && mq.MessageId != "" {
		mq = ev.nextAMQP()
	}
	if !bytes.Equal(mq.Body, ps.Data) {
		t.Errorf("RabbitMQ event\n got %s\nwant the Pub/Sub body %s", mq.Body, ps.Data)
	}
	if want := fmt.Sprintf("%d-%s", rec.ID, rec.Status); mq.MessageId != want {
		t.Errorf("RabbitMQ message_id %q, want %q", mq.MessageId, want)
	}
	if mq.ContentType != "application/json" || mq.DeliveryMode != amqp.Persistent {
		t.Errorf("RabbitMQ content type %q, delivery mode %d; want application/json, persistent", mq.ContentType, mq.DeliveryMode)
	}
	if rec.Status == record.Success {
		signed, err := signing.VerifySignedURL(link, e.stack.SigningKey)
		if err != nil {
			t.Fatalf("downloadUrl %s: %v", link, err)
		}
		if signed.Expires != signedTTL {
			t.Errorf("X-Goog-Expires %s, want SIGNED_URL_TTL %s", signed.Expires, signedTTL)
		}
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		csv, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(csv, seed.Golden(golden)) {
			t.Errorf("GET downloadUrl: %s\n%s\nwant the golden %s", resp.Status, csv, golden)
		}
	}
	return strings.Replace(string(ps.Data), link, "", 1)
}

// A SUCCESS and a FAILED report are announced on Pub/Sub and, forwarded
// by DrainTriggers, on RabbitMQ, with the contract's bodies; a trigger
// republished for a final record announces it again, identically but for
// the link.
func TestCompletionEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{envFor: func(e *env) map[string][]string {
		m := map[string][]string{stack.DrainTriggers: {"SIGNED_URL_TTL=" + signedTTL.String()}}
		for _, f := range topology.Functions() {
			m[f.EntryPoint] = []string{"SIGNED_URL_TTL=" + signedTTL.String()}
		}
		return m
	}})
	ev := listen(t, e)
	ctx := context.Background()

	ok := e.request("withdraw_by_tag", seed.Params)
	rec := e.wait(ok, 60*time.Second)
	if rec.Status != record.Success {
		t.Fatalf("record %d %s: %s", ok, rec.Status, rec.FailReason)
	}
	first := ev.expect(e, rec, seed.GoldenWithdrawByTag)

	// An upstream asks again by republishing the ID.
	if err := e.client.Publish(ctx, []byte(fmt.Sprint(ok))); err != nil {
		t.Fatal(err)
	}
	if again := ev.expect(e, rec, seed.GoldenWithdrawByTag); again != first {
		t.Errorf("republished SUCCESS event differs beyond the link:\n%s\n%s", first, again)
	}

	// An unknown report type ends FAILED in DrainTriggers.
	bad, err := e.client.Records.Insert(ctx, "no_such_report", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.Publish(ctx, []byte(fmt.Sprint(bad))); err != nil {
		t.Fatal(err)
	}
	frec := e.wait(bad, 60*time.Second)
	if frec.Status != record.Failed || !strings.Contains(frec.FailReason, "no_such_report") {
		t.Fatalf("record %d %s %q, want FAILED naming the report type", bad, frec.Status, frec.FailReason)
	}
	ffirst := ev.expect(e, frec, "")
	if err := e.client.Publish(ctx, []byte(fmt.Sprint(bad))); err != nil {
		t.Fatal(err)
	}
	if again := ev.expect(e, frec, ""); again != ffirst {
		t.Errorf("republished FAILED event differs:\n%s\n%s", ffirst, again)
	}
}
