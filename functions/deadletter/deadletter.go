// Package deadletter is the push handler on the dead-letter topic: a message that
// failed every delivery ends its record FAILED with a reason naming the
// stage and the listener (or the aggregator) that kept failing.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/output"
	"github.com/fanoutexport/fanoutexport/shared/push"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Name is DeadLetter's name in logs and parked messages.
const Name = "dead-letter"

// Env is DeadLetter's config and clients.
type Env struct {
	*serverenv.Env
	completion.Finisher
	cfg config.DeadLetter
}

// New returns the push handler; clients are created on first request.
func New() *push.Handler {
	return push.New(Name, func(ctx context.Context) (push.Func, error) {
		var cfg config.DeadLetter
		if err := config.Load(ctx, &cfg); err != nil {
			return nil, err
		}
		return NewEnv(ctx, cfg)
	})
}

// NewEnv creates the clients for cfg.
func NewEnv(ctx context.Context, cfg config.DeadLetter, pubsubOpts ...option.ClientOption) (*Env, error) {
	env, fin, err := completion.SetupFinisher(ctx, serverenv.Options{PubSub: cfg.PubSub, Redis: cfg.Redis, DSN: cfg.Records.DSN,
		MaxConns: cfg.DB.MaxConns, PubSubOptions: pubsubOpts, TraceExporter: cfg.Log.TraceExporter}, cfg.Completion, cfg.Storage.Bucket)
	if err != nil {
		return nil, err
	}
	return &Env{Env: env, Finisher: fin, cfg: cfg}, nil
}

// Handle ends the dead letter's record FAILED with a reason naming who
// failed. A dead letter that names no record is parked.
func (e *Env) Handle(ctx context.Context, in *message.Envelope, log *slog.Logger) error {
	h := message.Peek(in.Message.Data, in.Message.Attributes)
	if h.RecordID <= 0 {
		return fault.Parkf("dead letter that names no record")
	}
	reason, err := e.reason(ctx, h, in.Message.Attributes)
	if err != nil {
		return err
	}
	return e.Fail(ctx, in, h, reason, log)
}

// Fail marks the record FAILED with reason and drops its hash and its
// parts' segments; a record already final is left as it is. Either way
// the record is announced before the dead letter is acked. The report's
// other parts stop where they are: their listeners and the aggregator
// find the hash gone and the record final.
func (e *Env) Fail(ctx context.Context, _ *message.Envelope, h message.Header, reason string, log *slog.Logger) error {
	ok, err := e.Records.MarkFailed(ctx, h.RecordID, reason)
	if err != nil {
		return err
	}
	if !ok {
		err := e.Announce.Announce(ctx, h.RecordID, log)
		if errors.Is(err, record.ErrNotFound) {
			// Deleted while its report ran: permanent. Drop the hash now
			// rather than keep it alive through retries, and park.
			e.deleteState(ctx, h.RecordID, log)
			return fault.Parkf("record %d not found: it was deleted while its report ran; its report state %s was dropped and nothing was announced", h.RecordID, e.State.Key(h.RecordID))
		}
		log.Info("record already final; announcing it again before acking the dead letter", "reason", reason)
		return err
	}
	log.Error("report FAILED", "reason", reason)
	e.deleteState(ctx, h.RecordID, log)
	if n, err := e.Store.DeletePrefix(ctx, output.SegmentPrefix(h.RecordID)); err != nil {
		log.Warn("could not delete the report's segments", "error", err)
	} else if n > 0 {
		log.Info("deleted the failed report's segments", "objects", n)
	}
	return e.Announce.Ended(ctx, h.RecordID, log)
}

func (e *Env) deleteState(ctx context.Context, id int64, log *slog.Logger) {
	if err := e.State.Delete(ctx, id); err != nil {
		log.Warn("could not delete the hash; its TTL will", "error", err)
	}
}

// reason names who failed. Pub/Sub's dead-letter attributes name the
// source subscription; without them (pstest) the hash tells which
// listeners of the stage never finished and their last errors.
func (e *Env) reason(ctx context.Context, m message.Header, attrs map[string]string) (string, error) {
	deliveries := attrs[message.AttrDeadLetterDeliveryCount]
	if deliveries == "" {
		deliveries = strconv.Itoa(topology.MaxDeliveryAttempts)
	}
	fromSub := sourceOfSubscription(attrs[message.AttrDeadLetterSubscription], e.cfg.PubSub.NamePrefix)
	isDone := m.Source != "" // done messages go to the aggregator

	var stages [][]string
	if rep, ok := report.Lookup(m.ReportType); ok {
		stages = rep.StageSources()
	}
	part := state.Part{Index: m.Part, Count: m.Parts}
	snap, err := e.State.ReadPart(ctx, m.RecordID, part, stages)
	stateGone := errors.Is(err, state.ErrGone)
	if err != nil && !stateGone {
		return "", err
	}

	var who []string
	switch {
	case isDone || fromSub == state.AggregatorName:
		who = []string{state.AggregatorName}
	case fromSub != "":
		who = []string{fromSub}
	case !stateGone && m.Stage >= 1 && m.Stage <= len(stages):
		for _, src := range stages[m.Stage-1] {
			if !snap.Done[m.Stage][src] {
				who = append(who, src)
			}
		}
	}
	if len(who) == 0 {
		who = m.Sources
	}
	sort.Strings(who)

	var b strings.Builder
	if isDone || (len(who) == 1 && who[0] == state.AggregatorName) {
		b.WriteString(failreason.DeadAggregator.Text(m.Stage, deliveries))
	} else {
		b.WriteString(failreason.DeadListener.Text(m.Stage, strings.Join(who, ", "), deliveries))
	}
	if m.ReportType != "" {
		fmt.Fprintf(&b, " (report %s)", m.ReportType)
	}
	if !part.IsWhole() {
		fmt.Fprintf(&b, "; part %d of %d, %s", part.Index+1, part.Count, report.DescribeBounds(m.ReportType, m.Bounds))
	}
	if stateGone {
		b.WriteString("; report state already gone from Redis")
	}
	for _, w := range who {
		if e := snap.Errors[w]; e != "" {
			fmt.Fprintf(&b, "; last error from %s: %s", w, e)
		}
	}
	return b.String(), nil
}

// sourceOfSubscription maps a dead-letter source subscription
// ("projects/p/subscriptions/listen-withdraw") to the listener's source
// name, or "aggregate"; "" when unknown.
func sourceOfSubscription(full, prefix string) string {
	if full == "" {
		return ""
	}
	short := strings.TrimPrefix(full[strings.LastIndex(full, "/")+1:], prefix)
	f, ok := topology.BySubscription(short)
	switch {
	case !ok:
		return ""
	case f.Source != "":
		return f.Source
	case f.EntryPoint == topology.EntryAggregate:
		return state.AggregatorName
	}
	return ""
}
