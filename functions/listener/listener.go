// Package listener is the push handler of one source-table listener: it
// fetches the source's rows for a report into the Redis hash, counts
// itself done once, and tells the aggregator.
package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	"github.com/fanoutexport/fanoutexport/shared/aggstate"
	"github.com/fanoutexport/fanoutexport/shared/clients"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/fetch"
	"github.com/fanoutexport/fanoutexport/shared/lazy"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/pushfn"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Handler serves one source's push subscription.
type Handler struct {
	source report.Source
	deps   *lazy.Value[*deps]
}

type deps struct {
	cfg config.Listener
	*clients.Clients
}

// New returns the listener for source. No client is created until the
// first request.
func New(source report.Source) *Handler {
	h := &Handler{source: source}
	h.deps = lazy.New(func(ctx context.Context) (*deps, error) {
		cfg, err := config.LoadListener(ctx, source)
		if err != nil {
			return nil, err
		}
		c, err := clients.Open(ctx, cfg.PubSub, cfg.Redis, cfg.DB, cfg.DSN)
		if err != nil {
			return nil, err
		}
		return &deps{cfg: cfg, Clients: c}, nil
	})
	return h
}

// ServeHTTP handles one push delivery: 2xx acks it, anything else makes
// Pub/Sub redeliver it (at most 6 times, then dead-letter it).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := logging.Default.With(logging.KeySource, h.source.Name())
	d, err := h.deps.Get(r.Context())
	if err != nil {
		pushfn.Serve(w, r, log, "", nil, err)
		return
	}
	pushfn.Serve(w, r, log, d.cfg.PubSub.ProjectID, func(ctx context.Context, push *message.Push, log *slog.Logger) error {
		return d.handle(ctx, h.source, push, log)
	}, nil)
}

// handle returns nil to ack; an error means "retry".
func (d *deps) handle(ctx context.Context, src report.Source, push *message.Push, log *slog.Logger) error {
	m, id, err := message.DecodeStage(push.Message.Data)
	attrs := push.Message.Attributes
	if id > 0 {
		log = log.With(logging.KeyRecordID, id)
	}
	switch {
	case errors.Is(err, message.ErrVersion):
		// Another deployment may understand it: retry, and leave the
		// reason for the DLQ function if none does.
		d.recordError(ctx, id, src, err, log)
		return err
	case err != nil && id > 0:
		stage, _ := strconv.Atoi(attrs[message.AttrStage])
		return d.fail(ctx, message.Done{RecordID: id, ReportType: orUnknown(attrs[message.AttrReportType]), Stage: max(stage, 1), Source: src.Name()},
			fmt.Sprintf("listener %s could not decode its stage message: %v", src.Name(), err), log)
	case err != nil:
		return d.Bus.Park(ctx, log, push.Message.Data, attrs, fmt.Sprintf("listener %s: %v", src.Name(), err))
	}
	log = log.With(logging.KeyStage, m.Stage)
	if !slices.Contains(m.Sources, src.Name()) {
		log.Debug("report does not use this listener in this stage; acking", "reportType", m.ReportType)
		return nil
	}
	done := message.Done{V: message.SchemaVersion, RecordID: id, ReportType: m.ReportType, Stage: m.Stage, Source: src.Name()}
	rep, ok := report.Lookup(m.ReportType)
	if !ok || !slices.Contains(rep.SourceNames(m.Stage), src.Name()) {
		return d.fail(ctx, done, fmt.Sprintf("listener %s does not know report type %q at stage %d (deployed version older than the shim's?)", src.Name(), m.ReportType, m.Stage), log)
	}
	params, err := report.ParseParams(m.Params)
	if err != nil {
		return d.fail(ctx, done, fmt.Sprintf("listener %s: %v", src.Name(), err), log)
	}

	already, err := d.State.IsDone(ctx, id, m.Stage, src.Name())
	switch {
	case errors.Is(err, aggstate.ErrGone):
		// Expired, finished or failed: the aggregator decides which.
		log.Warn("report state is gone; telling the aggregator", "error", err)
		return d.publishDone(ctx, done)
	case err != nil:
		return err
	case already:
		log.Info("already done (redelivery); re-sending done")
		return d.publishDone(ctx, done)
	}

	store := d.State.Datasets(id)
	out := dataset.NewWriter(ctx, store, src.Dataset(), d.cfg.ChunkBytes)
	err = fetch.Run(ctx, d.DB, src, params, store, out)
	var chunks, rows int64
	if err == nil {
		chunks, rows, err = out.Close()
	}
	if err == nil {
		var counted bool
		var count int64
		counted, count, err = d.State.MarkDone(ctx, id, m.Stage, src.Name(), src.Dataset(), chunks, rows)
		if err == nil {
			log.Info("fetched", "rows", rows, "chunks", chunks, "counted", counted, aggstate.FieldDoneCount, count)
		}
	}
	switch {
	case errors.Is(err, aggstate.ErrGone):
		log.Warn("report state vanished while fetching; telling the aggregator", "error", err)
		return d.publishDone(ctx, done)
	case err != nil:
		d.recordError(ctx, id, src, err, log)
		return err
	}
	return d.publishDone(ctx, done)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (d *deps) publishDone(ctx context.Context, m message.Done) error {
	m.V = message.SchemaVersion
	_, err := d.Bus.PublishJSON(ctx, topology.TopicAggregate, m, m.Attributes())
	return err
}

// fail ends the report at once: the aggregator marks the record FAILED
// with reason. Retrying cannot fix these.
func (d *deps) fail(ctx context.Context, m message.Done, reason string, log *slog.Logger) error {
	log.Error("permanent failure; failing the report", "reason", reason)
	m.Failure = reason
	return d.publishDone(ctx, m)
}

// recordError leaves the error in the hash so the DLQ function can name it.
func (d *deps) recordError(ctx context.Context, id int64, src report.Source, err error, log *slog.Logger) {
	if rerr := d.State.NoteError(ctx, id, src.Name(), err); rerr != nil {
		log.Warn("could not record the error in Redis", "error", rerr)
	}
}
