// Package aggregator is the push handler on the aggregate topic. When every
// listener of a stage is done it claims the stage once, then either fans
// out the next stage or joins the datasets, streams the CSV to Cloud
// Storage and marks the record SUCCESS.
package aggregator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"cloud.google.com/go/storage"

	"github.com/fanoutexport/fanoutexport/shared/aggstate"
	"github.com/fanoutexport/fanoutexport/shared/clients"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/csvout"
	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/lazy"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/pushfn"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/reportstore"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Handler serves the aggregate subscription.
type Handler struct{ deps *lazy.Value[*Deps] }

// Deps are the aggregator's clients; Handle is its logic.
type Deps struct {
	Cfg config.Aggregator
	*clients.Clients
	Records *record.Repo
	Store   *reportstore.Store
}

// New returns the handler; clients are created on first request.
func New() *Handler {
	return &Handler{deps: lazy.New(func(ctx context.Context) (*Deps, error) {
		var cfg config.Aggregator
		if err := config.Load(ctx, &cfg); err != nil {
			return nil, err
		}
		return NewDeps(ctx, cfg)
	})}
}

// NewDeps creates the clients for cfg.
func NewDeps(ctx context.Context, cfg config.Aggregator) (*Deps, error) {
	c, err := clients.Open(ctx, cfg.PubSub, cfg.Redis, cfg.DB, cfg.Records.DSN)
	if err != nil {
		return nil, err
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		c.DB.Close()
		return nil, fmt.Errorf("storage.NewClient: %w", err)
	}
	return &Deps{Cfg: cfg, Clients: c, Records: record.NewRepo(c.DB), Store: reportstore.New(gcs, cfg.Storage.Bucket)}, nil
}

// ServeHTTP handles one push delivery: 2xx acks, anything else retries.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := logging.Default.With(logging.KeySource, aggstate.AggregatorName)
	d, err := h.deps.Get(r.Context())
	if err != nil {
		pushfn.Serve(w, r, log, "", nil, err)
		return
	}
	pushfn.Serve(w, r, log, d.Cfg.PubSub.ProjectID, d.Handle, nil)
}

// workTimeout is how long one message may work: the claim's lifetime less
// a margin for the final writes.
func (d *Deps) workTimeout() time.Duration {
	return max(d.Cfg.ClaimTTL-d.Cfg.ClaimTTL/10, time.Second)
}

// Handle processes one "done" message. nil means ack.
func (d *Deps) Handle(ctx context.Context, push *message.Push, log *slog.Logger) error {
	// Stop before the stage claim expires: after that another message may
	// take the stage over, and two aggregators must not work on it at once.
	ctx, cancel := context.WithTimeout(ctx, d.workTimeout())
	defer cancel()
	m, id, err := message.DecodeDone(push.Message.Data)
	if id > 0 {
		log = log.With(logging.KeyRecordID, id)
	}
	switch {
	case errors.Is(err, message.ErrVersion):
		d.recordError(ctx, id, err, log)
		return err
	case err != nil && id > 0:
		return d.fail(ctx, id, fmt.Sprintf("aggregator could not decode a done message: %v", err), log)
	case err != nil:
		return d.Bus.Park(ctx, log, push.Message.Data, push.Message.Attributes, fmt.Sprintf("aggregator: %v", err))
	}
	log = log.With(logging.KeyStage, m.Stage, "from", m.Source)
	if m.Failure != "" {
		return d.fail(ctx, id, m.Failure, log)
	}
	rep, ok := report.Lookup(m.ReportType)
	if !ok {
		return d.fail(ctx, id, fmt.Sprintf("aggregator does not know report type %q (known: %v)", m.ReportType, report.Types()), log)
	}
	err = d.advance(ctx, id, rep, push.ID(), log)
	switch {
	case errors.Is(err, aggstate.ErrGone):
		return d.gone(ctx, id, m.Stage, push, log)
	case errors.Is(err, dataset.ErrCorrupt), errors.Is(err, dataset.ErrMissing):
		return d.fail(ctx, id, fmt.Sprintf("aggregator: %v", err), log)
	case err != nil:
		d.recordError(ctx, id, err, log)
		return err
	}
	return nil
}

func stageNames(rep report.Report) [][]string {
	names := make([][]string, len(rep.Stages))
	for n := range rep.Stages {
		names[n] = rep.SourceNames(n + 1)
	}
	return names
}

// advance takes the next step if the highest complete stage has not taken it.
func (d *Deps) advance(ctx context.Context, id int64, rep report.Report, msgID string, log *slog.Logger) error {
	snap, err := d.State.Read(ctx, id, stageNames(rep))
	if err != nil {
		return err
	}
	if snap.ReportType != rep.Type {
		return fmt.Errorf("%w: hash says report type %q, message says %q", dataset.ErrCorrupt, snap.ReportType, rep.Type)
	}
	// queryDoneCount is cumulative, so the highest complete stage is the
	// last one whose cumulative count has been reached.
	n := 0
	for n < len(rep.Stages) && snap.DoneCount >= rep.DoneAfter(n+1) {
		n++
	}
	if n == 0 {
		log.Debug("waiting for the other listeners", aggstate.FieldDoneCount, snap.DoneCount, "need", rep.DoneAfter(1))
		return nil
	}
	log = log.With(logging.KeyStage, n)
	if snap.Claims[n] == "done" {
		log.Debug("stage already handled")
		return nil
	}
	claim, err := d.State.Claim(ctx, id, n, msgID, d.Cfg.ClaimTTL)
	if err != nil {
		return err
	}
	switch claim {
	case aggstate.Held:
		log.Info("stage claimed by another message; acking")
		return nil
	case aggstate.Completed:
		return nil
	}
	store := d.State.Datasets(id)
	if n < len(rep.Stages) {
		next, err := rep.Between(ctx, n, store, d.Cfg.ChunkBytes)
		if err != nil {
			return err
		}
		if next {
			msg := message.Stage{V: message.SchemaVersion, RecordID: id, ReportType: rep.Type, Stage: n + 1,
				Sources: rep.SourceNames(n + 1), Params: snap.Params}
			if _, err := d.Bus.PublishJSON(ctx, topology.StageTopic(n+1), msg, msg.Attributes()); err != nil {
				return err
			}
			log.Info("stage complete; fanned out the next stage", "next", n+1)
			return d.State.CompleteClaim(ctx, id, n)
		}
		log.Info("stage produced no rows; skipping the remaining stages")
	}
	return d.finish(ctx, id, rep, store, log)
}

// finish joins, uploads the CSV, marks SUCCESS, then deletes the hash.
func (d *Deps) finish(ctx context.Context, id int64, rep report.Report, store dataset.Store, log *slog.Logger) error {
	object := reportstore.ObjectName(id, rep.Type)
	var rows int64
	err := d.Store.Write(ctx, object, func(w io.Writer) error {
		cw, err := csvout.New(w, rep.CSV)
		if err != nil {
			return err
		}
		if err := rep.Join(ctx, store, cw.Write); err != nil {
			return err
		}
		rows = cw.Rows()
		return cw.Flush()
	})
	if err != nil {
		return err
	}
	path := reportstore.Path(d.Store.Bucket(), object)
	ok, err := d.Records.MarkSuccess(ctx, id, path, rows)
	if err != nil {
		return err
	}
	if ok {
		log.Info("report SUCCESS", "path", path, "rows", rows)
	} else {
		log.Warn("record was no longer PROCESSING; left as it is", "path", path)
	}
	if err := d.State.Delete(ctx, id); err != nil {
		log.Warn("could not delete the hash; its TTL will", "error", err)
	}
	return nil
}

// gone handles a missing hash: a late duplicate after the record ended, or
// a report whose state expired or was deleted. Never upload an empty CSV.
func (d *Deps) gone(ctx context.Context, id int64, stage int, push *message.Push, log *slog.Logger) error {
	rec, err := d.Records.Get(ctx, id)
	if errors.Is(err, record.ErrNotFound) {
		return d.Bus.Park(ctx, log, push.Message.Data, push.Message.Attributes, fmt.Sprintf("aggregator: no record %d", id))
	}
	if err != nil {
		return err
	}
	if rec.Status.Final() {
		log.Info("record already final; late message acked", "status", rec.Status.String())
		return nil
	}
	return d.fail(ctx, id, fmt.Sprintf("report state %s is gone from Redis (expired after its TTL or deleted) before stage %d finished; nothing was uploaded; request the export again",
		d.State.Key(id), stage), log)
}

// fail marks the record FAILED (if not final) and drops its hash.
func (d *Deps) fail(ctx context.Context, id int64, reason string, log *slog.Logger) error {
	ok, err := d.Records.MarkFailed(ctx, id, reason)
	if err != nil {
		return err
	}
	if ok {
		log.Error("report FAILED", "reason", reason)
	} else {
		log.Info("record already final; failure not recorded", "reason", reason)
	}
	if err := d.State.Delete(ctx, id); err != nil {
		log.Warn("could not delete the hash; its TTL will", "error", err)
	}
	return nil
}

func (d *Deps) recordError(ctx context.Context, id int64, err error, log *slog.Logger) {
	if rerr := d.State.NoteError(ctx, id, aggstate.AggregatorName, err); rerr != nil {
		log.Warn("could not record the error in Redis", "error", rerr)
	}
}
