package trigger_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// The upstream owns the trigger queue and may declare it with arguments.
// A deployed DrainTriggers (K_SERVICE set) only checks that it exists, so such a
// queue works, and a missing one is named plainly; an active declaration
// would fail every session with PRECONDITION_FAILED. Against the real
// RabbitMQ, with queues of this test's own. Not parallel: sets K_SERVICE.
func TestDeclareTriggerPassivelyWhenDeployed(t *testing.T) {
	testdb.NeedRabbitMQ(t)
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) // registered first, so it runs after the queues are deleted
	base := fmt.Sprintf("declaretest.%d", rand.Uint64())
	cfg := config.DrainTriggers{TriggerQueue: base + ".trigger", RetryQueue: base + ".retry", WaitQueue: base + ".wait", ParkedQueue: base + ".parked",
		RetryDelay: 60e9, NotFoundDelay: 5e9}
	channel := func() *amqp.Channel {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	t.Cleanup(func() {
		// A channel per queue: a failed delete closes its channel.
		for _, q := range []string{cfg.TriggerQueue, cfg.RetryQueue, cfg.WaitQueue, cfg.ParkedQueue, cfg.TriggerQueue + ".throttled"} {
			ch, err := conn.Channel()
			if err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Errorf("cleanup: delete %s: %v", q, err)
			}
			ch.Close()
		}
	})

	t.Setenv("K_SERVICE", "drain-triggers")
	err = trigger.Declare(channel(), cfg)
	var amqpErr *amqp.Error
	if err == nil || !strings.Contains(err.Error(), "does not exist on the broker") || !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
		t.Fatalf("deployed Declare without the trigger queue = %v; want a NOT_FOUND error saying it does not exist", err)
	}

	// The upstream declares it with arguments of its own.
	if _, err := channel().QueueDeclare(cfg.TriggerQueue, true, false, false, false, amqp.Table{"x-max-length": int32(100000)}); err != nil {
		t.Fatal(err)
	}
	if err := trigger.Declare(channel(), cfg); err != nil {
		t.Errorf("deployed Declare with the upstream's queue = %v; want nil", err)
	}
	t.Setenv("K_SERVICE", "")
	err = trigger.Declare(channel(), cfg)
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.PreconditionFailed {
		t.Errorf("an active declaration of the upstream's queue = %v; want PRECONDITION_FAILED (what the passive one avoids)", err)
	}
}
