// Package emulators starts the local stand-ins for Google's managed
// services, the in-process Pub/Sub emulator (pstest) and fake-gcs-server,
// and creates on them the topics and subscriptions the deployment has.
package emulators

import (
	"context"
	"errors"
	"fmt"
	"time"

	pubsub "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/api/option/internaloption"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// DefaultPubSubAddr is where the local stack runs the Pub/Sub emulator, the
// address gcloud's emulator uses too, so PUBSUB_EMULATOR_HOST habits carry over.
const DefaultPubSubAddr = "127.0.0.1:8085"

// StartPubSub starts the in-process Pub/Sub emulator on addr (host:port;
// port 0 picks a free one, read it back from the server's Addr). Close the
// server to stop it.
func StartPubSub(addr string) (srv *pstest.Server, err error) {
	if addr == "" {
		addr = DefaultPubSubAddr
	}
	// pstest panics when it cannot listen; turn that into an error so a busy
	// port is reported, not a crash.
	defer func() {
		if r := recover(); r != nil {
			srv, err = nil, fmt.Errorf("pstest.NewServerWithAddress(%q): %v", addr, r)
		}
	}()
	return pstest.NewServerWithAddress(addr), nil
}

// PubSubOptions are the client options that point a Pub/Sub client at the
// emulator on addr: plain gRPC, no credentials. They are what the library
// derives from PUBSUB_EMULATOR_HOST, passed explicitly so that tests with
// several emulators can run in parallel.
func PubSubOptions(addr string) []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(addr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithoutAuthentication(),
		option.WithTelemetryDisabled(),
		internaloption.SkipDialSettingsValidation(),
	}
}

// TopicName is the full resource name of topic in project.
func TopicName(project, topic string) string {
	return "projects/" + project + "/topics/" + topic
}

// SubscriptionName is the full resource name of subscription sub in project.
func SubscriptionName(project, sub string) string {
	return "projects/" + project + "/subscriptions/" + sub
}

// CreateTopology creates on the emulator at emulatorAddr every topic of
// topology.Topics(), one subscription per push function in fns (with
// its dead-letter policy, the production retry policy and ackDeadline), and
// the pull subscriptions parked-hold and completed-amqp. Subscriptions are
// pull subscriptions: the emulator cannot push, the relay pulls and pushes
// instead. Names go through names. Running it again is harmless: existing
// subscriptions are updated to the wanted policy.
func CreateTopology(ctx context.Context, emulatorAddr, project string, names topology.Names, fns []topology.Function, stages int, ackDeadline time.Duration) error {
	if project == "" {
		return errors.New("create topology: empty project")
	}
	opts := PubSubOptions(emulatorAddr)
	tc, err := pubsub.NewTopicAdminClient(ctx, opts...)
	if err != nil {
		return fmt.Errorf("pubsub.NewTopicAdminClient(%s): %w", emulatorAddr, err)
	}
	defer tc.Close()
	sc, err := pubsub.NewSubscriptionAdminClient(ctx, opts...)
	if err != nil {
		return fmt.Errorf("pubsub.NewSubscriptionAdminClient(%s): %w", emulatorAddr, err)
	}
	defer sc.Close()

	for _, t := range topology.Topics() {
		name := TopicName(project, names.Topic(t))
		if _, err := tc.CreateTopic(ctx, &pubsubpb.Topic{Name: name}); err != nil && status.Code(err) != codes.AlreadyExists {
			return fmt.Errorf("CreateTopic(%s): %w", name, err)
		}
	}

	ackSecs := int32(ackDeadline / time.Second)
	backoff := durationpb.New(topology.BackoffSeconds * time.Second)
	for _, f := range fns {
		if f.Kind != topology.KindPush {
			continue
		}
		if f.Topic == "" || f.Subscription == "" {
			return fmt.Errorf("create topology: push function %s without topic or subscription", f.EntryPoint)
		}
		sub := &pubsubpb.Subscription{
			Name:               SubscriptionName(project, names.Sub(f.Subscription)),
			Topic:              TopicName(project, names.Topic(f.Topic)),
			AckDeadlineSeconds: ackSecs,
			// Recorded for parity with the Terraform; pstest ignores it and
			// the relay applies the backoff.
			RetryPolicy: &pubsubpb.RetryPolicy{MinimumBackoff: backoff, MaximumBackoff: backoff},
		}
		if f.DeadLetterTopic != "" {
			sub.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{
				DeadLetterTopic:     TopicName(project, names.Topic(f.DeadLetterTopic)),
				MaxDeliveryAttempts: int32(f.MaxDeliveryAttempts),
			}
		}
		if err := ensureSubscription(ctx, sc, sub); err != nil {
			return err
		}
	}

	// The pull subscriptions: parked-hold keeps parked messages until
	// someone pulls them by hand; completed-amqp is DrainTriggers', which
	// forwards completion events to RabbitMQ. Nothing dead-letters out of
	// either.
	for _, p := range []struct{ sub, topic string }{
		{topology.SubParked, topology.TopicParked},
		{topology.SubCompletedAMQP, topology.TopicCompleted},
	} {
		if err := ensureSubscription(ctx, sc, &pubsubpb.Subscription{
			Name:               SubscriptionName(project, names.Sub(p.sub)),
			Topic:              TopicName(project, names.Topic(p.topic)),
			AckDeadlineSeconds: ackSecs,
		}); err != nil {
			return err
		}
	}
	return nil
}

// ensureSubscription creates sub, or brings an existing one to sub's ack
// deadline and policies so that a rerun with other settings takes effect.
func ensureSubscription(ctx context.Context, sc *pubsub.SubscriptionAdminClient, sub *pubsubpb.Subscription) error {
	_, err := sc.CreateSubscription(ctx, sub)
	if err == nil {
		return nil
	}
	if status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("CreateSubscription(%s on %s): %w", sub.Name, sub.Topic, err)
	}
	// The topic of a subscription cannot change; the rest can.
	_, err = sc.UpdateSubscription(ctx, &pubsubpb.UpdateSubscriptionRequest{
		Subscription: sub,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{
			"ack_deadline_seconds", "dead_letter_policy", "retry_policy",
		}},
	})
	if err != nil {
		return fmt.Errorf("UpdateSubscription(%s): %w", sub.Name, err)
	}
	return nil
}
