// Package dlq is the push handler on the dead-letter topic: a message that
// failed every delivery ends its record FAILED with a reason naming the
// stage and the listener (or the aggregator) that kept failing.
package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/fanoutexport/fanoutexport/shared/aggstate"
	"github.com/fanoutexport/fanoutexport/shared/clients"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/lazy"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/pushfn"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Attributes Pub/Sub adds to a dead-lettered message (pstest adds none).
const (
	AttrDLSourceSub   = "CloudPubSubDeadLetterSourceSubscription"
	AttrDLDeliveries  = "CloudPubSubDeadLetterSourceDeliveryCount"
	defaultDeliveries = "6"
)

// Handler serves the dead-letter subscription.
type Handler struct{ deps *lazy.Value[*deps] }

type deps struct {
	cfg config.DeadLetter
	*clients.Clients
	records *record.Repo
}

// New returns the handler; clients are created on first request.
func New() *Handler {
	return &Handler{deps: lazy.New(func(ctx context.Context) (*deps, error) {
		var cfg config.DeadLetter
		if err := config.Load(ctx, &cfg); err != nil {
			return nil, err
		}
		c, err := clients.Open(ctx, cfg.PubSub, cfg.Redis, cfg.DB, cfg.Records.DSN)
		if err != nil {
			return nil, err
		}
		return &deps{cfg: cfg, Clients: c, records: record.NewRepo(c.DB)}, nil
	})}
}

// ServeHTTP handles one dead letter.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := logging.Default.With(logging.KeySource, "dead-letter")
	d, err := h.deps.Get(r.Context())
	if err != nil {
		pushfn.Serve(w, r, log, "", nil, err)
		return
	}
	pushfn.Serve(w, r, log, d.cfg.PubSub.ProjectID, d.handle, nil)
}

// deadLetter is what any of our messages holds that the DLQ needs. Decoding
// is lenient on purpose: a message that failed because of its own shape
// still names its record.
type deadLetter struct {
	V          int      `json:"v"`
	RecordID   int64    `json:"recordId"`
	ReportType string   `json:"reportType"`
	Stage      int      `json:"stage"`
	Source     string   `json:"source"`  // done messages
	Sources    []string `json:"sources"` // stage messages
}

func (d *deps) handle(ctx context.Context, push *message.Push, log *slog.Logger) error {
	var m deadLetter
	attrs := push.Message.Attributes
	if err := json.Unmarshal(push.Message.Data, &m); err != nil || m.RecordID <= 0 {
		return d.Bus.Park(ctx, log, push.Message.Data, attrs, "dead letter that names no record")
	}
	log = log.With(logging.KeyRecordID, m.RecordID, logging.KeyStage, m.Stage)
	reason, err := d.reason(ctx, m, attrs)
	if err != nil {
		return err
	}
	ok, err := d.records.MarkFailed(ctx, m.RecordID, reason)
	if err != nil {
		return err
	}
	if !ok {
		log.Info("record already final; dead letter acked", "reason", reason)
		return nil
	}
	log.Error("report FAILED", "reason", reason)
	if err := d.State.Delete(ctx, m.RecordID); err != nil {
		log.Warn("could not delete the hash; its TTL will", "error", err)
	}
	return nil
}

// reason names who failed. Pub/Sub's dead-letter attributes name the
// source subscription; without them (pstest) the hash tells which
// listeners of the stage never finished and their last errors.
func (d *deps) reason(ctx context.Context, m deadLetter, attrs map[string]string) (string, error) {
	deliveries := attrs[AttrDLDeliveries]
	if deliveries == "" {
		deliveries = defaultDeliveries
	}
	fromSub := sourceOfSubscription(attrs[AttrDLSourceSub], d.cfg.PubSub.NamePrefix)
	isDone := m.Source != "" // done messages go to the aggregator

	var stages [][]string
	if rep, ok := report.Lookup(m.ReportType); ok {
		for n := range rep.Stages {
			stages = append(stages, rep.SourceNames(n+1))
		}
	}
	snap, err := d.State.Read(ctx, m.RecordID, stages)
	stateGone := errors.Is(err, aggstate.ErrGone)
	if err != nil && !stateGone {
		return "", err
	}

	var who []string
	switch {
	case isDone || fromSub == aggstate.AggregatorName:
		who = []string{aggstate.AggregatorName}
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
	if isDone || (len(who) == 1 && who[0] == aggstate.AggregatorName) {
		fmt.Fprintf(&b, "stage %d aggregator failed %s delivery attempts", m.Stage, deliveries)
	} else {
		fmt.Fprintf(&b, "stage %d listener %s failed %s delivery attempts", m.Stage, strings.Join(who, ", "), deliveries)
	}
	if m.ReportType != "" {
		fmt.Fprintf(&b, " (report %s)", m.ReportType)
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
	short := full[strings.LastIndex(full, "/")+1:]
	short = strings.TrimPrefix(short, prefix)
	for _, f := range report.Functions() {
		if f.Subscription == short {
			if f.Source != "" {
				return f.Source
			}
			if f.EntryPoint == topology.EntryAggregate {
				return aggstate.AggregatorName
			}
		}
	}
	return ""
}
