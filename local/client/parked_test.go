package client_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

const amqpURL = "amqp://guest:guest@127.0.0.1:5672/"

// Requeue moves the trigger the operator picked, named by its key, even
// when another listing running at the same time holds triggers ahead of
// it (the rest shift: by position the wrong trigger would move), and after
// the queue's order changed.
func TestRequeueMovesThePickedTrigger(t *testing.T) {
	if testing.Short() {
		t.Skip("needs RabbitMQ")
	}
	t.Parallel()
	ctx := context.Background()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	parkedQ, triggerQ := testdb.UniqueName(t, "parked"), testdb.UniqueName(t, "trigger")
	for _, q := range []string{parkedQ, triggerQ} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Errorf("delete queue %s: %v", q, err)
			}
		})
	}
	// Two parkings of one body differ by their headers (here the reason;
	// in DrainTriggers also the trace context), and are told apart.
	for _, p := range [][2]string{{"101", "no record 101"}, {"102", "no record 102"}, {"103", "no record 103"}, {"103", "not a trigger"}} {
		if err := ch.PublishWithContext(ctx, "", parkedQ, false, false, amqp.Publishing{
			Body: []byte(p[0]), Headers: amqp.Table{trigger.HeaderParkReason: p[1], trigger.HeaderAttempt: int32(6)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	c := &client.Client{AMQPURL: amqpURL, TriggerQueue: triggerQ, ParkedQueue: parkedQ}
	listed, err := c.ParkedTriggers(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{} // body and reason → what -requeue takes
	for _, p := range listed {
		keys[p.Body+" "+p.Reason] = p.Requeue
	}
	if len(keys) != 4 {
		t.Fatalf("listed %+v; want 4 triggers, each with its own key", listed)
	}

	// Another listing holds the first trigger while the operator requeues
	// the one listed second.
	holder, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if d, ok, err := holder.Get(parkedQ, false); err != nil || !ok || string(d.Body) != "101" {
		t.Fatalf("holding the first trigger: %q, %v, %v", d.Body, ok, err)
	}
	requeue := func(key string) client.Parked {
		t.Helper()
		p, err := c.Requeue(ctx, strings.TrimPrefix(key, client.InRabbitMQ+":"))
		if err != nil {
			t.Fatalf("Requeue(%s): %v", key, err)
		}
		return p
	}
	if p := requeue(keys["102 no record 102"]); p.Body != "102" || p.Reason != "no record 102" {
		t.Errorf("requeued %q (%s), want 102", p.Body, p.Reason)
	}
	holder.Close() // the held trigger goes back, maybe behind the others

	if p := requeue(keys["103 not a trigger"]); p.Body != "103" || p.Reason != "not a trigger" {
		t.Errorf("requeued %q (%s), want 103 (not a trigger)", p.Body, p.Reason)
	}
	if _, err := c.Requeue(ctx, strings.TrimPrefix(keys["102 no record 102"], client.InRabbitMQ+":")); !errors.Is(err, client.ErrNoParked) {
		t.Errorf("requeueing 102 again = %v, want ErrNoParked", err)
	}

	// The trigger queue got exactly the two picked, without their park
	// headers; the other two are still parked.
	var moved []string
	for {
		d, ok, err := ch.Get(triggerQ, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if _, has := d.Headers[trigger.HeaderParkReason]; has {
			t.Errorf("requeued %q still carries %s", d.Body, trigger.HeaderParkReason)
		}
		moved = append(moved, string(d.Body))
	}
	if diff := cmp.Diff([]string{"102", "103"}, moved); diff != "" {
		t.Errorf("trigger queue (-want +got):\n%s", diff)
	}
	left, err := c.ParkedTriggers(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range left {
		got = append(got, p.Body+" "+p.Reason)
	}
	if diff := cmp.Diff([]string{"101 no record 101", "103 no record 103"}, got, cmpSorted); diff != "" {
		t.Errorf("still parked (-want +got):\n%s", diff)
	}
}

var cmpSorted = cmp.Transformer("sort", func(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
})
