// Package bus publishes messages to Pub/Sub and waits for the server's
// confirmation, so a handler acks its own input only after its output is
// durable.
package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/topology"
	"github.com/fanoutexport/fanoutexport/shared/tracing"
)

// Bus publishes to the deployment's topics.
type Bus struct {
	client *pubsub.Client
	names  topology.Names
	mu     sync.Mutex
	pubs   map[string]*pubsub.Publisher
}

// New creates the Pub/Sub client; PUBSUB_EMULATOR_HOST points it at pstest.
func New(ctx context.Context, project string, names topology.Names, opts ...option.ClientOption) (*Bus, error) {
	c, err := pubsub.NewClient(ctx, project, opts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub.NewClient %s: %w", project, err)
	}
	return &Bus{client: c, names: names, pubs: map[string]*pubsub.Publisher{}}, nil
}

func (b *Bus) publisher(topic string) *pubsub.Publisher {
	b.mu.Lock()
	defer b.mu.Unlock()
	name := b.names.Topic(topic)
	p, ok := b.pubs[name]
	if !ok {
		p = b.client.Publisher(name)
		b.pubs[name] = p
	}
	return p
}

// Publish sends data to topic and returns the server-assigned ID once
// Pub/Sub has confirmed it.
func (b *Bus) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	// The report's trace travels in the attributes to the next hop.
	a := make(map[string]string, len(attrs)+2)
	for k, v := range attrs {
		a[k] = v
	}
	tracing.Inject(ctx, a)
	id, err := b.publisher(topic).Publish(ctx, &pubsub.Message{Data: data, Attributes: a}).Get(ctx)
	if err != nil {
		return "", fmt.Errorf("pubsub publish to %s: %w", b.names.Topic(topic), err)
	}
	return id, nil
}

// PublishJSON marshals v and publishes it.
func (b *Bus) PublishJSON(ctx context.Context, topic string, v any, attrs map[string]string) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("marshal message for %s: %w", topic, err)
	}
	return b.Publish(ctx, topic, data, attrs)
}

// Attributes of a parked message besides its own, which it keeps under
// "orig." (compare watermill's poison queue).
const (
	AttrParkReason       = "parkReason"
	AttrParkHandler      = "parkHandler"      // the function that parked it
	AttrParkSubscription = "parkSubscription" // the subscription it came from
)

// Park keeps a message nobody can act on in the parked topic, with why and
// where it came from, and logs it with its body (truncated), so it is
// never silently dropped.
func (b *Bus) Park(ctx context.Context, log *slog.Logger, data []byte, attrs map[string]string, reason, handler, subscription string) error {
	log.Error("parking message", "reason", reason, "body", fault.Body(data, 512), "attributes", attrs)
	a := map[string]string{AttrParkReason: reason, AttrParkHandler: handler, AttrParkSubscription: subscription}
	for k, v := range attrs {
		a["orig."+k] = v
	}
	_, err := b.Publish(ctx, topology.TopicParked, data, a)
	return err
}

// Close flushes and stops every publisher.
func (b *Bus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.pubs {
		p.Stop()
	}
	return b.client.Close()
}
