// Package listen is the push handler of one source-table listener: it
// fetches the source's rows for a report into the Redis hash, counts
// itself done once, and tells the aggregator.
package listen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/push"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/topology"
	"github.com/fanoutexport/fanoutexport/shared/tracing"
)

// Env is one listener instance: its config, its source and its clients.
type Env struct {
	*serverenv.Env
	cfg    config.Listener
	source report.Source
}

// New returns the push handler of source's listener. Nothing is created
// until the first request.
func New(source report.Source) *push.Handler {
	return push.New(source.Name(), func(ctx context.Context) (push.Func, error) {
		cfg, err := config.LoadListener(ctx, source)
		if err != nil {
			return nil, err
		}
		return NewEnv(ctx, cfg, source)
	})
}

// NewEnv makes the listener's clients for cfg.
func NewEnv(ctx context.Context, cfg config.Listener, source report.Source, pubsubOpts ...option.ClientOption) (*Env, error) {
	env, err := serverenv.Setup(ctx, serverenv.Options{PubSub: cfg.PubSub, Redis: cfg.Redis, DSN: cfg.DSN,
		MaxConns: cfg.DB.MaxConns, PubSubOptions: pubsubOpts, TraceExporter: cfg.Log.TraceExporter})
	if err != nil {
		return nil, err
	}
	return &Env{Env: env, cfg: cfg, source: source}, nil
}

// Handle fetches the source's rows for one stage message.
func (e *Env) Handle(ctx context.Context, in *message.Envelope, log *slog.Logger) error {
	src := e.source
	m, _, err := message.DecodeStage(in.Message.Data)
	switch {
	case errors.Is(err, message.ErrVersion):
		// Another deployment may understand it: retry.
		return err
	case err != nil:
		// With a record, fail its report (the push handler parks the
		// message when it names none).
		return fault.Permanent(failreason.ListenerDecode.Errorf(src.Name(), err))
	}
	if !slices.Contains(m.Sources, src.Name()) {
		log.Debug("report does not use this listener in this stage; acking", "reportType", m.ReportType)
		return nil
	}
	// A name is unique only within a report: another listener may read
	// the same table for this report (a range read in stage 1, a lookup in
	// stage 2). The entry point decides whether the message is ours.
	rep, ok := report.Lookup(m.ReportType)
	if !ok {
		return fault.Permanent(failreason.ListenerUnknownType.Errorf(src.Name(), m.ReportType, m.Stage))
	}
	mine, ok := rep.StageSource(m.Stage, src.Name())
	if !ok {
		return fault.Permanent(failreason.ListenerUnknownType.Errorf(src.Name(), m.ReportType, m.Stage))
	}
	if mine.EntryPoint != src.EntryPoint {
		log.Debug("another listener reads this table for this report; acking", "reportType", m.ReportType, "listener", mine.EntryPoint)
		return nil
	}
	params, err := report.ParseParams(m.Params)
	if err != nil {
		return fault.Permanent(failreason.ListenerParams.Errorf(src.Name(), err))
	}
	var bounds report.Bounds
	if len(m.Bounds) > 0 {
		if err := json.Unmarshal(m.Bounds, &bounds); err != nil {
			return fault.Permanentf("listener %s could not decode its stage message: %w", src.Name(), err)
		}
	}
	part := state.Part{Index: m.Part, Count: m.Parts}
	done := message.Done{RecordID: m.RecordID, ReportType: m.ReportType, Stage: m.Stage, Source: src.Name(), Chunks: m.Chunks, PartOf: m.PartOf}
	if !part.IsWhole() {
		log = log.With("part", m.Part, "parts", m.Parts, "bounds", bounds.Describe(src.Key))
	}

	already, err := e.State.IsPartDone(ctx, m.RecordID, part, m.Stage, src.Name())
	switch {
	case errors.Is(err, state.ErrGone):
		// Expired, finished or failed: the aggregator decides which.
		log.Warn("report state is gone; telling the aggregator", "error", err)
		return e.publishDone(ctx, done)
	case err != nil:
		return err
	case already:
		log.Info("already done (redelivery); re-sending done")
		return e.publishDone(ctx, done)
	}

	return e.fetch(ctx, m, src, params, bounds, part, done, log)
}

// fetch runs one attempt: its own dataset fields, written only while no
// other attempt's dataset was chosen, then counted, or dropped if another
// attempt won. Readers read only the attempt the done marker names.
func (e *Env) fetch(ctx context.Context, m message.Stage, src report.Source, params report.Params, bounds report.Bounds, part state.Part, done message.Done, log *slog.Logger) error {
	id := m.RecordID
	attempt, err := e.State.NewAttempt(ctx, id)
	if err == nil {
		var reads map[string]int64
		if src.Input != "" {
			var a int64
			if a, err = e.State.PartInputAttempt(ctx, id, part, m.Stage); err == nil {
				reads = map[string]int64{src.Input: a}
			}
		}
		if err == nil {
			err = e.fetchAttempt(ctx, m, src, params, bounds, part, attempt, reads, log)
		}
	}
	switch {
	case errors.Is(err, state.ErrGone):
		log.Warn("report state vanished while fetching; telling the aggregator", "error", err)
	case errors.Is(err, state.ErrSuperseded):
		log.Info("another attempt's dataset was chosen meanwhile; dropping this one", "attempt", attempt)
		if derr := e.State.DropPartAttempt(ctx, id, part, src.Dataset(), attempt); derr != nil {
			log.Warn("could not drop this attempt's dataset; the hash's deletion will", "error", derr)
		}
	case err != nil:
		return err
	}
	return e.publishDone(ctx, done)
}

func (e *Env) fetchAttempt(ctx context.Context, m message.Stage, src report.Source, params report.Params, bounds report.Bounds, part state.Part, attempt int64, reads map[string]int64, log *slog.Logger) error {
	ctx, span := tracing.Start(ctx, "fetch "+src.Name())
	defer span.End()
	store := e.State.PartWriter(m.RecordID, part, state.PartDoneField(part, m.Stage, src.Name()), attempt, reads)
	out := dataset.NewWriter(ctx, store, src.Dataset(), e.cfg.ChunkBytes)
	codec := dataset.CodecNamed(m.Chunks)
	out.SetCodec(codec)
	// MAX_REPORT_ROWS: stop streaming as soon as the dataset passes it (a
	// part past it is a report past it; the aggregator sums the parts).
	start := time.Now()
	how, err := report.FetchRead(ctx, e.DB, src, params, bounds, store, out, e.cfg.MaxReportRows, report.ReadAuto)
	if err != nil {
		return err
	}
	if src.Input != "" {
		log.Info("read", "read", how.Read.String(), "inputs", how.Inputs, "statements", how.Statements,
			"returned", how.Returned, "estimatedRows", int64(how.Estimated), "values", how.Values,
			"seconds", time.Since(start).Seconds())
	}
	chunks, rows, err := out.Close()
	if err != nil {
		return err
	}
	d, err := e.State.MarkPartDone(ctx, m.RecordID, part, m.Stage, src.Name(), src.Dataset(), attempt, chunks, rows)
	if err != nil {
		return err
	}
	log.Info("fetched", "rows", rows, "chunks", chunks, "codec", codec.String(), "attempt", attempt, "counted", d.Counted, state.FieldDoneCount, d.Count)
	if d.Attempt != attempt {
		return fmt.Errorf("%w: attempt %d counts", state.ErrSuperseded, d.Attempt)
	}
	return nil
}

// Fail ends the report at once: the listener cannot write the record, so
// it tells the aggregator, which marks the record FAILED with reason.
func (e *Env) Fail(ctx context.Context, _ *message.Envelope, h message.Header, reason string, _ *slog.Logger) error {
	reportType := h.ReportType
	if reportType == "" {
		reportType = "unknown"
	}
	return e.publishDone(ctx, message.Done{RecordID: h.RecordID, ReportType: reportType, Stage: max(h.Stage, 1),
		Source: e.source.Name(), Failure: reason, PartOf: h.PartOf})
}

func (e *Env) publishDone(ctx context.Context, m message.Done) error {
	m.V = message.SchemaVersion
	if _, err := e.Bus.PublishJSON(ctx, topology.TopicAggregate, m, m.Attributes()); err != nil {
		return fmt.Errorf("publish done: %w", err)
	}
	return nil
}
