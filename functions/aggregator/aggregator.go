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
	"time"

	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/dataset"
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
	"github.com/fanoutexport/fanoutexport/shared/tracing"
)

// Env is the aggregator's config and clients.
type Env struct {
	*serverenv.Env
	Cfg     config.Aggregator
	Records *record.Repo
	Store   *output.Store
	// Announce publishes the completion event of a record made (or found) final.
	Announce *completion.Announcer
}

// New returns the push handler; clients are created on first request.
func New() *push.Handler {
	return push.New(state.AggregatorName, func(ctx context.Context) (push.Func, error) {
		var cfg config.Aggregator
		if err := config.Load(ctx, &cfg); err != nil {
			return nil, err
		}
		return NewEnv(ctx, cfg)
	})
}

// NewEnv creates the clients for cfg.
func NewEnv(ctx context.Context, cfg config.Aggregator, pubsubOpts ...option.ClientOption) (*Env, error) {
	env, err := serverenv.Setup(ctx, serverenv.Options{PubSub: cfg.PubSub, Redis: cfg.Redis, DSN: cfg.Records.DSN,
		MaxConns: cfg.DB.MaxConns, Storage: true, PubSubOptions: pubsubOpts, TraceExporter: cfg.Log.TraceExporter})
	if err != nil {
		return nil, err
	}
	records := record.NewRepo(env.DB)
	ann, err := completion.NewAnnouncer(records, env.Bus, env.Storage, cfg.Completion)
	if err != nil {
		return nil, errors.Join(err, env.Close())
	}
	return &Env{Env: env, Cfg: cfg, Records: records, Store: output.NewStore(env.Storage, cfg.Storage.Bucket), Announce: ann}, nil
}

// workTimeout is how long one message may work: the claim's lifetime less
// a margin for the final writes.
func (e *Env) workTimeout() time.Duration {
	return max(e.Cfg.ClaimTTL-e.Cfg.ClaimTTL/10, time.Second)
}

// Handle processes one "done" message. nil means ack.
func (e *Env) Handle(ctx context.Context, push *message.Push, log *slog.Logger) error {
	// Stop before the stage claim expires: after that another message may
	// take the stage over, and two aggregators must not work on it at once.
	ctx, cancel := context.WithTimeout(ctx, e.workTimeout())
	defer cancel()
	m, id, err := message.DecodeDone(push.Message.Data)
	switch {
	case errors.Is(err, message.ErrVersion):
		return err // a newer deployment may understand it
	case err != nil:
		return fault.Permanent(failreason.AggregatorDecode.Errorf(err))
	}
	log = log.With("from", m.Source)
	if m.Failure != "" {
		return fault.Permanent(errors.New(m.Failure))
	}
	rep, ok := report.Lookup(m.ReportType)
	if !ok {
		return fault.Permanent(failreason.AggregatorUnknownType.Errorf(m.ReportType, report.Types()))
	}
	err = e.advance(ctx, id, rep, push.ID(), push.DeliveryAttempt, log)
	if errors.Is(err, state.ErrGone) {
		return e.gone(ctx, id, m.Stage, log)
	}
	if errors.Is(err, record.ErrNotFound) {
		return e.recordDeleted(ctx, id, log)
	}
	var overLimit *report.RowLimitExceeded
	if errors.As(err, &overLimit) {
		return fault.Permanent(overLimit) // the reason, word for word
	}
	if fault.ClassOf(err) == fault.Fail {
		return fault.Permanent(failreason.Aggregator.Errorf(err))
	}
	return err
}

// advance takes the next step if the highest complete stage has not taken it.
func (e *Env) advance(ctx context.Context, id int64, rep report.Report, msgID string, deliveryAttempt int, log *slog.Logger) error {
	snap, err := e.State.Read(ctx, id, rep.StageSources())
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
		log.Debug("waiting for the other listeners", state.FieldDoneCount, snap.DoneCount, "need", rep.DoneAfter(1))
		return nil
	}
	log = log.With("completeStage", n)
	if snap.Claims[n] == "done" {
		log.Debug("stage already handled")
		return nil
	}
	claim, err := e.State.Claim(ctx, id, n, msgID, deliveryAttempt, e.Cfg.ClaimTTL)
	if err != nil {
		return err
	}
	switch claim {
	case state.Held:
		log.Info("stage claimed by another message; acking")
		return nil
	case state.Completed:
		return nil
	}
	reads := chosenAttempts(rep, snap)
	if n < len(rep.Stages) {
		return e.nextStage(ctx, id, rep, n, snap.Params, reads, log)
	}
	return e.finish(ctx, id, rep, e.State.Reader(id, reads), log)
}

// chosenAttempts maps each finished source's dataset to the attempt its
// done marker names: the only one readers read.
func chosenAttempts(rep report.Report, snap state.Snapshot) map[string]int64 {
	reads := map[string]int64{}
	for n, stage := range rep.Stages {
		for _, src := range stage {
			if a := snap.Attempts[n+1][src.Name()]; a > 0 {
				reads[src.Dataset()] = a
			}
		}
	}
	return reads
}

// nextStage writes stage n+1's input under an attempt of its own, commits
// it (an aggregator that took the stage over may have committed first:
// then its input counts and ours is dropped), and fans out stage n+1 — or,
// when stage n found nothing, finishes at once.
func (e *Env) nextStage(ctx context.Context, id int64, rep report.Report, n int, params []byte, reads map[string]int64, log *slog.Logger) error {
	ctx, span := tracing.Start(ctx, "hand over to the next stage")
	defer span.End()
	attempt, err := e.State.NewAttempt(ctx, id)
	if err != nil {
		return err
	}
	next, err := rep.Between(ctx, n, e.State.Writer(id, state.InputField(n+1), attempt, reads), e.Cfg.ChunkBytes)
	if errors.Is(err, state.ErrSuperseded) {
		next, err = true, nil // another aggregator committed its input
	}
	if err != nil {
		return err
	}
	if !next {
		log.Info("stage produced no rows; skipping the remaining stages")
		return e.finish(ctx, id, rep, e.State.Reader(id, reads), log)
	}
	winner, err := e.State.CommitInput(ctx, id, n+1, attempt)
	if err != nil {
		return err
	}
	if winner != attempt {
		for _, src := range rep.Stages[n] {
			if src.Input != "" {
				if err := e.State.DropAttempt(ctx, id, src.Input, attempt); err != nil {
					log.Warn("could not drop this attempt's input; the hash's deletion will", "error", err)
				}
			}
		}
	}
	msg := message.Stage{V: message.SchemaVersion, RecordID: id, ReportType: rep.Type, Stage: n + 1,
		Sources: rep.SourceNames(n + 1), Params: params}
	if _, err := e.Bus.PublishJSON(ctx, topology.StageTopic(n+1), msg, msg.Attributes()); err != nil {
		return err
	}
	log.Info("stage complete; fanned out the next stage", "next", n+1, "inputAttempt", winner)
	return e.State.CompleteClaim(ctx, id, n)
}

// finish joins, uploads the CSV, marks SUCCESS, then deletes the hash.
func (e *Env) finish(ctx context.Context, id int64, rep report.Report, store dataset.Store, log *slog.Logger) error {
	ctx, span := tracing.Start(ctx, "join and upload")
	defer span.End()
	object := output.ObjectName(id, rep.Type)
	// A run that another run finished uploads nothing: that run's object
	// is the record's, and never changes. WriteNew holds the line when
	// the two race past this check.
	if rec, err := e.Records.Get(ctx, id); err != nil {
		return err
	} else if rec.Status.Final() {
		log.Info("record already final; nothing uploaded", "status", rec.Status.String())
		e.deleteState(ctx, id, log)
		return e.Announce.Announce(ctx, id, log)
	}
	var rows int64
	err := e.Store.WriteNew(ctx, object, func(w io.Writer) error {
		cw, err := output.NewCSV(w, rep.CSV)
		if err != nil {
			return err
		}
		write := cw.Write
		if limit := e.Cfg.MaxReportRows; limit > 0 {
			// MAX_REPORT_ROWS: the writer's error abandons the upload.
			write = func(row []string) error {
				if cw.Rows() >= limit {
					return report.RowLimitError(limit)
				}
				return cw.Write(row)
			}
		}
		if err := rep.Join(ctx, store, write); err != nil {
			return err
		}
		rows = cw.Rows()
		return cw.Flush()
	})
	if errors.Is(err, output.ErrExists) {
		// Another run (or this upload's own committed first attempt)
		// wrote the object: it stands, and row_count must be its rows.
		if rows, err = e.Store.CountRows(ctx, object); err != nil {
			return err
		}
		log.Warn("the report's object was already uploaded; kept it and read its rows back", "object", object, "rows", rows)
	}
	if err != nil {
		return err
	}
	path := output.Path(e.Store.Bucket(), object)
	ok, err := e.Records.MarkSuccess(ctx, id, path, rows)
	if err != nil {
		return err
	}
	e.deleteState(ctx, id, log)
	// Acked only once announced; a redelivery finds the hash gone and
	// the record final, and announces it again (gone).
	if !ok {
		log.Warn("record was no longer PROCESSING; left as it is", "path", path)
		return e.Announce.Announce(ctx, id, log)
	}
	log.Info("report SUCCESS", "path", path, "rows", rows)
	return e.Announce.Ended(ctx, id, log)
}

// gone handles a missing hash: a late duplicate after the record ended, or
// a report whose state expired or was deleted. Never upload an empty CSV.
func (e *Env) gone(ctx context.Context, id int64, stage int, log *slog.Logger) error {
	rec, err := e.Records.Get(ctx, id)
	if errors.Is(err, record.ErrNotFound) {
		return fault.Parkf("no record %d", id)
	}
	if err != nil {
		return err
	}
	if rec.Status.Final() {
		log.Info("record already final; announcing it again before acking", "status", rec.Status.String())
		return e.Announce.Announce(ctx, id, log)
	}
	// The listeners tell the aggregator when they find the hash missing,
	// so this is the one reason for every path that does.
	return fault.Permanentf("%s: %s is gone from Redis (expired after its TTL, deleted, or lost in a Redis restart) before stage %d finished; nothing was uploaded; request the export again",
		failreason.StateLost.Text(), e.State.Key(id), stage)
}

// Fail marks the record FAILED (if not final) and drops its hash.
func (e *Env) Fail(ctx context.Context, _ *message.Push, h message.Header, reason string, log *slog.Logger) error {
	ok, err := e.Records.MarkFailed(ctx, h.RecordID, reason)
	if err != nil {
		return err
	}
	e.deleteState(ctx, h.RecordID, log)
	if !ok {
		err := e.Announce.Announce(ctx, h.RecordID, log)
		if errors.Is(err, record.ErrNotFound) {
			return e.recordDeleted(ctx, h.RecordID, log)
		}
		log.Info("record already final; failure not recorded", "reason", reason)
		return err
	}
	log.Error("report FAILED", "reason", reason)
	return e.Announce.Ended(ctx, h.RecordID, log)
}

// recordDeleted ends the work on a report whose record was deleted while
// it ran. That is permanent: retrying would only keep refreshing the hash's
// TTL (every delivery does) until the message was dead-lettered, leaving
// the hash in the shared Redis all that time. So the hash goes now and the
// message is parked with the reason; there is no record to fail or
// announce.
func (e *Env) recordDeleted(ctx context.Context, id int64, log *slog.Logger) error {
	e.deleteState(ctx, id, log)
	return fault.Parkf("record %d not found: it was deleted while its report ran; its report state %s was dropped, nothing was announced, and an object already uploaded for it stays", id, e.State.Key(id))
}

func (e *Env) deleteState(ctx context.Context, id int64, log *slog.Logger) {
	if err := e.State.Delete(ctx, id); err != nil {
		log.Warn("could not delete the hash; its TTL will", "error", err)
	}
}
