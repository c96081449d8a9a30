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
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/shared/topology"
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
	id, err := b.publisher(topic).Publish(ctx, &pubsub.Message{Data: data, Attributes: attrs}).Get(ctx)
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

// Park keeps a message nobody can act on in the parked topic, with why,
// and logs it with its body (truncated), so it is never silently dropped.
func (b *Bus) Park(ctx context.Context, log *slog.Logger, data []byte, attrs map[string]string, reason string) error {
	log.Error("parking message", "reason", reason, "body", Truncate(data, 512), "attributes", attrs)
	a := map[string]string{"parkReason": reason}
	for k, v := range attrs {
		a["orig."+k] = v
	}
	_, err := b.Publish(ctx, topology.TopicParked, data, a)
	return err
}

// Truncate renders a body for a log line.
func Truncate(data []byte, max int) string {
	s := data
	if len(s) > max {
		s = s[:max]
	}
	if !utf8.Valid(s) {
		return fmt.Sprintf("%q", s)
	}
	if len(data) > max {
		return string(s) + fmt.Sprintf("… (%d bytes)", len(data))
	}
	return string(s)
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
