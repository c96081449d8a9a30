// Package topology names every function, Pub/Sub topic and subscription of
// the system in one place. The root registration file, the local stack and
// the Terraform checks all read these names, so they cannot drift apart.
package topology

import (
	"fmt"
	"sort"

	"github.com/fanoutexport/fanoutexport/shared/report"
)

// Entry points of the functions that are not listeners. Listener entry points
// come from the source definitions in package report.
const (
	EntryDrainTriggers = "DrainTriggers"
	EntryAggregate     = "Aggregate"
	EntryDeadLetter    = "DeadLetter"
	// EntrySweep ends records stuck in PENDING or PROCESSING.
	EntrySweep = "Sweep"
)

// Topic names (before the optional PUBSUB_NAME_PREFIX).
const (
	TopicAggregate  = "report-aggregate"
	TopicDeadLetter = "report-dead-letter"
	// TopicParked receives messages nobody can act on (undecodable bodies,
	// dead letters DeadLetter cannot attribute), so nothing is dropped.
	TopicParked = "report-parked"
	// TopicCompleted announces every record that became final (the
	// completion event, package completion).
	TopicCompleted = "report-completed"
)

// Subscription names (before the optional PUBSUB_NAME_PREFIX).
const (
	SubAggregate  = "aggregate"
	SubDeadLetter = "dead-letter"
	SubParked     = "report-parked-hold"
	// SubCompletedAMQP is DrainTriggers' pull subscription on TopicCompleted:
	// it forwards the events to RabbitMQ.
	SubCompletedAMQP = "report-completed-amqp"
)

// Delivery policy of every push subscription except the DLQ one.
const (
	MaxDeliveryAttempts = 6
	BackoffSeconds      = 60
	// DeadLetterMaxDeliveryAttempts is the DLQ subscription's own budget
	// before what it cannot handle goes to the parking topic.
	DeadLetterMaxDeliveryAttempts = 20
	// DeadLetterMinBackoffSeconds and DeadLetterMaxBackoffSeconds bound the
	// DLQ subscription's exponential backoff.
	DeadLetterMinBackoffSeconds = 10
	DeadLetterMaxBackoffSeconds = 600
)

// StateTTLSeconds is the report hash's fixed lifetime from its last write
// (config STATE_TTL's default, ARCHITECTURE.md). Terraform sizes timeouts
// against it.
const StateTTLSeconds = 600

// StageTopic is the fanout topic of stage n (1-based): MQ2 is stage 1, MQ4 stage 2.
func StageTopic(n int) string { return fmt.Sprintf("report-stage-%d", n) }

// Kind says how a function is triggered.
type Kind string

const (
	// KindPush functions are HTTP functions behind a Pub/Sub push subscription.
	KindPush Kind = "push"
	// KindScheduled functions are HTTP functions fired by Cloud Scheduler.
	KindScheduled Kind = "scheduled"
)

// Function is one deployed Cloud Function.
type Function struct {
	EntryPoint   string
	Kind         Kind
	Topic        string // push: the topic its subscription reads
	Subscription string // push: its own subscription
	// DeadLetterTopic is where its subscription sends a message after
	// MaxDeliveryAttempts failed deliveries.
	DeadLetterTopic     string
	MaxDeliveryAttempts int
	// MinBackoffSeconds and MaxBackoffSeconds bound the retry backoff of
	// its subscription.
	MinBackoffSeconds, MaxBackoffSeconds int

	// Listeners only.
	Source   string // the source table, "plt_fund.vs_withdraw"
	Database string // the database it reads, "plt_fund"
	Stage    int    // the stage whose topic it reads
	Slug     string // names its service accounts in Terraform
}

// Functions lists every deployed function: DrainTriggers, one listener per
// source (from the report definitions), the aggregator, DeadLetter
// and the sweeper. This is the one list the registration file, the local stack
// and the Terraform checks read.
func Functions() []Function {
	fns := []Function{{EntryPoint: EntryDrainTriggers, Kind: KindScheduled}}
	var ls []Function
	for _, s := range report.Sources {
		ls = append(ls, Function{
			EntryPoint: s.EntryPoint, Kind: KindPush,
			Topic: StageTopic(s.Stage), Subscription: s.Subscription,
			DeadLetterTopic: TopicDeadLetter, MaxDeliveryAttempts: MaxDeliveryAttempts,
			MinBackoffSeconds: BackoffSeconds, MaxBackoffSeconds: BackoffSeconds,
			Source: s.Name(), Database: s.Database, Stage: s.Stage, Slug: s.Slug,
		})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].EntryPoint < ls[j].EntryPoint })
	fns = append(fns, ls...)
	return append(fns,
		Function{
			EntryPoint: EntryAggregate, Kind: KindPush,
			Topic: TopicAggregate, Subscription: SubAggregate,
			DeadLetterTopic: TopicDeadLetter, MaxDeliveryAttempts: MaxDeliveryAttempts,
			MinBackoffSeconds: BackoffSeconds, MaxBackoffSeconds: BackoffSeconds,
		},
		// The DLQ subscription is the one exception to 6 × 60 s: it retries
		// with backoff and parks what it cannot handle, so nothing is lost.
		Function{
			EntryPoint: EntryDeadLetter, Kind: KindPush,
			Topic: TopicDeadLetter, Subscription: SubDeadLetter,
			DeadLetterTopic: TopicParked, MaxDeliveryAttempts: DeadLetterMaxDeliveryAttempts,
			MinBackoffSeconds: DeadLetterMinBackoffSeconds, MaxBackoffSeconds: DeadLetterMaxBackoffSeconds,
		},
		Function{EntryPoint: EntrySweep, Kind: KindScheduled},
	)
}

// BySubscription finds the function reading subscription short (without
// the deployment prefix).
func BySubscription(short string) (Function, bool) {
	for _, f := range Functions() {
		if f.Subscription != "" && f.Subscription == short {
			return f, true
		}
	}
	return Function{}, false
}

// Topics lists every topic: one per stage the reports use, and the rest.
func Topics() []string {
	var ts []string
	for i := 1; i <= report.MaxStages(); i++ {
		ts = append(ts, StageTopic(i))
	}
	return append(ts, TopicAggregate, TopicDeadLetter, TopicParked, TopicCompleted)
}

// TopicPurpose says what a topic carries (a stage topic's is built by
// Purpose).
var TopicPurpose = map[string]string{
	TopicAggregate:  "listener done messages (MQ3) for the aggregator",
	TopicDeadLetter: "messages that failed their push deliveries; DeadLetter marks the record FAILED",
	TopicParked:     "messages nobody can act on, held for inspection",
	TopicCompleted:  "a record became final (SUCCESS or FAILED); DrainTriggers forwards it to RabbitMQ",
}

// Purpose says what topic t carries.
func Purpose(t string) string {
	for i := 1; i <= report.MaxStages(); i++ {
		if t == StageTopic(i) {
			return fmt.Sprintf("stage %d fanout: the listeners of stage %d subscribe", i, i)
		}
	}
	return TopicPurpose[t]
}

// PullSubscriptions are the subscriptions nobody pushes from, by name, with
// the topic each reads.
var PullSubscriptions = map[string]string{
	SubParked:        TopicParked,
	SubCompletedAMQP: TopicCompleted,
}

// Names applies a deployment's prefix to topic and subscription names.
type Names struct{ Prefix string }

// Topic returns the prefixed topic name.
func (n Names) Topic(t string) string { return n.Prefix + t }

// Sub returns the prefixed subscription name.
func (n Names) Sub(s string) string { return n.Prefix + s }
