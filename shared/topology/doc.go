package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/fanoutexport/fanoutexport/shared/report"
)

//go:generate go run ./gen -gomod ../../go.mod -o ../../terraform/topology.json -mocks ../../terraform/tests/mocks/topology.tfmock.hcl

// GeneratedNote is the "_generated" entry of terraform/topology.json.
const GeneratedNote = "Generated from shared/report and shared/topology by `go generate ./shared/topology`; do not edit. The Terraform module reads it (locals.tf); a test of shared/topology fails when it is not current."

// Document is what the Terraform module needs to know of the code, as
// terraform/topology.json holds it: every name and policy that is a
// contract between the deployment and the functions.
type Document struct {
	Generated string `json:"_generated"`
	// GoRuntime is the Cloud Functions runtime of go.mod's go directive:
	// "go 1.26.8" is go126.
	GoRuntime       string `json:"go_runtime"`
	StateTTLSeconds int    `json:"state_ttl_seconds"`
	// PushDelivery is the delivery policy of every push subscription but
	// DeadLetter's.
	PushDelivery Delivery               `json:"push_delivery"`
	Functions    map[string]FunctionDoc `json:"functions"`
	Listeners    map[string]ListenerDoc `json:"listeners"`
	Topics       map[string]TopicDoc    `json:"topics"`
	StageTopics  []string               `json:"stage_topics"`
	PullSubs     map[string]PullSubDoc  `json:"pull_subscriptions"`
	Databases    map[string]DatabaseDoc `json:"source_databases"`
	SplitDBs     map[string]string      `json:"split_databases"`
}

// Delivery is a push subscription's retry and dead-letter policy.
type Delivery struct {
	DeadLetterTopic     string `json:"dead_letter_topic"`
	MaxDeliveryAttempts int    `json:"max_delivery_attempts"`
	MinimumBackoff      string `json:"minimum_backoff"`
	MaximumBackoff      string `json:"maximum_backoff"`
}

// FunctionDoc is one deployed function; Delivery, Topic and Subscription
// are null for a scheduled one.
type FunctionDoc struct {
	Kind         Kind      `json:"kind"`
	Topic        *string   `json:"topic"`
	Subscription *string   `json:"subscription"`
	Delivery     *Delivery `json:"delivery"`
}

// ListenerDoc is one listener function, keyed by its entry point.
type ListenerDoc struct {
	Slug         string `json:"slug"`
	Source       string `json:"source"`
	Database     string `json:"database"`
	DSNEnv       string `json:"dsn_env"`
	Stage        int    `json:"stage"`
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
}

// TopicDoc is one topic, keyed by its name before PUBSUB_NAME_PREFIX.
type TopicDoc struct {
	Purpose string `json:"purpose"`
}

// PullSubDoc is one pull subscription.
type PullSubDoc struct {
	Topic string `json:"topic"`
}

// DatabaseDoc is a source database: the variable its DSN is read from and
// the listeners that read it.
type DatabaseDoc struct {
	DSNEnv    string   `json:"dsn_env"`
	Listeners []string `json:"listeners"`
}

// slugRE: a service account ID is ${name}-${slug}-push, 6-30 characters,
// with name at most 12 (terraform/variables.tf).
var slugRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,10}[a-z0-9]$`)

// reservedSlugs are the account IDs (after "${name}-") of the functions
// that are not listeners.
var reservedSlugs = map[string]bool{
	"build": true, "aggregate": true, "aggregate-push": true, "dead-letter": true,
	"dead-letter-push": true, "drain": true, "drain-sched": true, "sweep": true, "sweep-sched": true,
}

func seconds(n int) string { return fmt.Sprintf("%ds", n) }

func delivery(f Function) *Delivery {
	if f.Kind != KindPush {
		return nil
	}
	return &Delivery{
		DeadLetterTopic: f.DeadLetterTopic, MaxDeliveryAttempts: f.MaxDeliveryAttempts,
		MinimumBackoff: seconds(f.MinBackoffSeconds), MaximumBackoff: seconds(f.MaxBackoffSeconds),
	}
}

func ptr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Build returns the document of the current definitions, or why they cannot
// be deployed (a listener's slug).
func Build() (Document, error) { return build(Functions()) }

func build(fns []Function) (Document, error) {
	d := Document{
		Generated:       GeneratedNote,
		StateTTLSeconds: StateTTLSeconds,
		PushDelivery: Delivery{
			DeadLetterTopic: TopicDeadLetter, MaxDeliveryAttempts: MaxDeliveryAttempts,
			MinimumBackoff: seconds(BackoffSeconds), MaximumBackoff: seconds(BackoffSeconds),
		},
		Functions: map[string]FunctionDoc{},
		Listeners: map[string]ListenerDoc{},
		Topics:    map[string]TopicDoc{},
		PullSubs:  map[string]PullSubDoc{},
		Databases: map[string]DatabaseDoc{},
		SplitDBs:  map[string]string{},
	}
	slugs := map[string]string{}
	for _, f := range fns {
		d.Functions[f.EntryPoint] = FunctionDoc{Kind: f.Kind, Topic: ptr(f.Topic), Subscription: ptr(f.Subscription), Delivery: delivery(f)}
		if f.Source == "" {
			continue
		}
		switch {
		case !slugRE.MatchString(f.Slug):
			return Document{}, fmt.Errorf("listener %s: slug %q must be 2-12 lower-case letters, digits or hyphens (report.Source.Slug)", f.EntryPoint, f.Slug)
		case reservedSlugs[f.Slug] || reservedSlugs[f.Slug+"-push"]:
			return Document{}, fmt.Errorf("listener %s: slug %q names another function's service account", f.EntryPoint, f.Slug)
		case slugs[f.Slug] != "":
			return Document{}, fmt.Errorf("listeners %s and %s have the same slug %q", slugs[f.Slug], f.EntryPoint, f.Slug)
		}
		slugs[f.Slug] = f.EntryPoint
		d.Listeners[f.EntryPoint] = ListenerDoc{
			Slug: f.Slug, Source: f.Source, Database: f.Database, DSNEnv: report.DSNEnv(f.Database),
			Stage: f.Stage, Topic: f.Topic, Subscription: f.Subscription,
		}
		db := d.Databases[f.Database]
		db.DSNEnv = report.DSNEnv(f.Database)
		db.Listeners = append(db.Listeners, f.EntryPoint)
		sort.Strings(db.Listeners)
		d.Databases[f.Database] = db
	}
	for _, t := range Topics() {
		d.Topics[t] = TopicDoc{Purpose: Purpose(t)}
	}
	for i := 1; i <= report.MaxStages(); i++ {
		d.StageTopics = append(d.StageTopics, StageTopic(i))
	}
	for s, t := range PullSubscriptions {
		d.PullSubs[s] = PullSubDoc{Topic: t}
	}
	for _, r := range report.Reports {
		if r.SplitBy != nil {
			d.SplitDBs[r.SplitBy.Source.Database] = report.DSNEnv(r.SplitBy.Source.Database)
		}
	}
	return d, nil
}

// GoRuntime is the Cloud Functions runtime for the go directive of gomod
// (go.mod's text): "go 1.26.8" is go126.
func GoRuntime(gomod []byte) (string, error) {
	for _, line := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "go" {
			v := strings.Split(f[1], ".")
			if len(v) < 2 {
				return "", fmt.Errorf("go.mod: go directive %q has no minor version", f[1])
			}
			return "go" + v[0] + v[1], nil
		}
	}
	return "", fmt.Errorf("go.mod has no go directive")
}

// JSON is terraform/topology.json as `go generate ./shared/topology`
// writes it from the definitions and go.mod's text: keys sorted, 2-space
// indent, a final newline.
func JSON(gomod []byte) ([]byte, error) {
	d, err := Build()
	if err != nil {
		return nil, err
	}
	if d.GoRuntime, err = GoRuntime(gomod); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
