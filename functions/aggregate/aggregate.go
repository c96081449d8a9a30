// Package aggregate is the push handler on the aggregate topic. When every
// listener of a stage is done it claims the stage once, then either fans
// out the next stage or joins the datasets, streams the CSV to Cloud
// Storage and marks the record SUCCESS.
package aggregate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
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
	completion.Finisher
	Cfg config.Aggregator
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
	env, fin, err := completion.SetupFinisher(ctx, serverenv.Options{PubSub: cfg.PubSub, Redis: cfg.Redis, DSN: cfg.Records.DSN,
		MaxConns: cfg.DB.MaxConns, PubSubOptions: pubsubOpts, TraceExporter: cfg.Log.TraceExporter}, cfg.Completion, cfg.Storage.Bucket)
	if err != nil {
		return nil, err
	}
	return &Env{Env: env, Finisher: fin, Cfg: cfg}, nil
}

// workTimeout is how long one message may work: the claim's lifetime less
// a margin for the final writes.
func (e *Env) workTimeout() time.Duration {
	return max(e.Cfg.ClaimTTL-e.Cfg.ClaimTTL/10, time.Second)
}

// Handle processes one "done" message. nil means ack.
func (e *Env) Handle(ctx context.Context, in *message.Envelope, log *slog.Logger) error {
	// Stop before the stage claim expires: after that another message may
	// take the stage over, and two aggregators must not work on it at once.
	ctx, cancel := context.WithTimeout(ctx, e.workTimeout())
	defer cancel()
	m, id, err := message.DecodeDone(in.Message.Data)
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
	part := state.Part{Index: m.Part, Count: m.Parts}
	if !part.IsWhole() {
		log = log.With("part", m.Part, "parts", m.Parts)
	}
	err = e.advance(ctx, id, rep, m.PartOf, m.Chunks, in.ID(), in.DeliveryAttempt, log)
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

// advance takes the next step of the message's part if the part's
// highest complete stage has not taken it. A one-part report's part is
// the whole report, under the hash's names of a report before parts.
func (e *Env) advance(ctx context.Context, id int64, rep report.Report, po message.PartOf, chunks string, msgID string, deliveryAttempt int, log *slog.Logger) error {
	part := state.Part{Index: po.Part, Count: po.Parts}
	snap, err := e.State.ReadPart(ctx, id, part, rep.StageSources())
	if err != nil {
		return err
	}
	if snap.ReportType != rep.Type {
		return fmt.Errorf("%w: hash says report type %q, message says %q", dataset.ErrCorrupt, snap.ReportType, rep.Type)
	}
	if snap.Parts != part.Count {
		return fmt.Errorf("%w: hash says %d parts, message says %s", dataset.ErrCorrupt, snap.Parts, part)
	}
	// The part's done count is cumulative over stages, so its highest
	// complete stage is the last one whose cumulative count is reached.
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
	claim, err := e.State.ClaimPart(ctx, id, part, n, msgID, deliveryAttempt, e.Cfg.ClaimTTL)
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
		return e.nextStage(ctx, id, rep, po, chunks, n, snap.Params, reads, msgID, deliveryAttempt, log)
	}
	if part.IsWhole() {
		return e.finish(ctx, id, rep, e.State.Reader(id, reads), log)
	}
	return e.finishPart(ctx, id, rep, part, n, reads, msgID, deliveryAttempt, log)
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

// nextStage writes the part's stage n+1 input, from the part's stage-n
// rows only, under an attempt of its own, commits it (an aggregator that
// took the stage over may have committed first: then its input counts and
// ours is dropped), and fans out stage n+1 for the part — or, when stage n
// found nothing, finishes the part at once.
func (e *Env) nextStage(ctx context.Context, id int64, rep report.Report, po message.PartOf, chunks string, n int, params []byte, reads map[string]int64, msgID string, deliveryAttempt int, log *slog.Logger) error {
	ctx, span := tracing.Start(ctx, "hand over to the next stage")
	defer span.End()
	part := state.Part{Index: po.Part, Count: po.Parts}
	attempt, err := e.State.NewAttempt(ctx, id)
	if err != nil {
		return err
	}
	next, err := rep.Between(ctx, n, e.State.PartWriter(id, part, state.PartInputField(part, n+1), attempt, reads), e.Cfg.ChunkBytes, dataset.CodecNamed(chunks))
	if errors.Is(err, state.ErrSuperseded) {
		next, err = true, nil // another aggregator committed its input
	}
	if err != nil {
		return err
	}
	if !next {
		log.Info("stage produced no rows; skipping the remaining stages")
		if part.IsWhole() {
			return e.finish(ctx, id, rep, e.State.Reader(id, reads), log)
		}
		return e.finishPart(ctx, id, rep, part, n, reads, msgID, deliveryAttempt, log)
	}
	winner, err := e.State.CommitPartInput(ctx, id, part, n+1, attempt)
	if err != nil {
		return err
	}
	if winner != attempt {
		for _, src := range rep.Stages[n] {
			if src.Input != "" {
				if err := e.State.DropPartAttempt(ctx, id, part, src.Input, attempt); err != nil {
					log.Warn("could not drop this attempt's input; the hash's deletion will", "error", err)
				}
			}
		}
	}
	msg := message.Stage{V: message.SchemaVersion, RecordID: id, ReportType: rep.Type, Stage: n + 1,
		Sources: rep.SourceNames(n + 1), Params: params, Chunks: chunks, PartOf: po}
	if _, err := e.Bus.PublishJSON(ctx, topology.StageTopic(n+1), msg, msg.Attributes()); err != nil {
		return err
	}
	log.Info("stage complete; fanned out the next stage", "next", n+1, "inputAttempt", winner)
	return e.State.CompletePartClaim(ctx, id, part, n)
}

// finish joins, uploads the CSV, marks SUCCESS, then deletes the hash.
func (e *Env) finish(ctx context.Context, id int64, rep report.Report, store dataset.Store, log *slog.Logger) error {
	ctx, span := tracing.Start(ctx, "join and upload")
	defer span.End()
	object := output.ObjectName(id, rep.Type)
	// A run that another run finished uploads nothing: that run's object
	// is the record's, and never changes. WriteNew holds the line when
	// the two race past this check.
	if done, err := e.alreadyFinal(ctx, id, log); done || err != nil {
		return err
	}
	var rows int64
	err := e.Store.WriteNew(ctx, object, func(w io.Writer) error {
		cw, err := output.NewCSV(w, rep.CSV)
		if err != nil {
			return err
		}
		if err := rep.Join(ctx, store, e.limited(cw)); err != nil {
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
	return e.succeed(ctx, id, object, rows, log)
}

// alreadyFinal reports (and announces) a record another run made final:
// its object, if any, is the record's and never changes.
func (e *Env) alreadyFinal(ctx context.Context, id int64, log *slog.Logger) (bool, error) {
	rec, err := e.Records.Get(ctx, id)
	if err != nil {
		return false, err
	}
	if !rec.Status.Final() {
		return false, nil
	}
	log.Info("record already final; nothing uploaded", "status", rec.Status.String())
	e.deleteState(ctx, id, log)
	if rec.Status == record.Failed {
		e.deleteSegments(ctx, id, log)
	}
	return true, e.Announce.Announce(ctx, id, log)
}

// limited is cw.Write bounded by MAX_REPORT_ROWS: the writer's error
// abandons the upload.
func (e *Env) limited(cw *output.CSVWriter) func(row []string) error {
	limit := e.Cfg.MaxReportRows
	if limit <= 0 {
		return cw.Write
	}
	return func(row []string) error {
		if cw.Rows() >= limit {
			return report.RowLimitError(limit)
		}
		return cw.Write(row)
	}
}

// succeed marks the record SUCCESS with object's path and rows, deletes
// the hash and announces the record.
func (e *Env) succeed(ctx context.Context, id int64, object string, rows int64, log *slog.Logger) error {
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

// finishPart joins one part of a report split into parts into its CSV
// segment (data rows only) under the report's temporary prefix, counts it
// once, drops the part's datasets, and, when it is the last segment,
// composes the report's object. A redelivery after a crash finds the
// segment counted and goes straight to the compose.
func (e *Env) finishPart(ctx context.Context, id int64, rep report.Report, part state.Part, n int, reads map[string]int64, msgID string, deliveryAttempt int, log *slog.Logger) error {
	ctx, span := tracing.Start(ctx, "join a part into its segment")
	defer span.End()
	rows, written, err := e.State.SegmentRows(ctx, id, part)
	if err != nil {
		return err
	}
	if !written {
		if done, err := e.alreadyFinal(ctx, id, log); done || err != nil {
			return err
		}
		object := output.SegmentName(id, part.Index)
		// The segment's rows are fixed by the done markers, so a
		// takeover writes the same bytes: Write replaces, never appends.
		err := e.Store.Write(ctx, object, func(w io.Writer) error {
			cw, err := output.NewSegmentCSV(w, rep.CSV)
			if err != nil {
				return err
			}
			if err := rep.Join(ctx, e.State.PartReader(id, part, reads), e.limited(cw)); err != nil {
				return err
			}
			rows = cw.Rows()
			return cw.Flush()
		})
		if err != nil {
			return err
		}
	}
	seg, err := e.State.MarkSegment(ctx, id, part, rows)
	if err != nil {
		return err
	}
	log.Info("part's segment written", "rows", rows, "segments", seg.Done, "counted", seg.Counted)
	e.dropPart(ctx, id, rep, part, reads, log)
	// MAX_REPORT_ROWS bounds the report: the sum of its parts.
	if limit := e.Cfg.MaxReportRows; limit > 0 && seg.Rows > limit {
		return report.RowLimitError(limit)
	}
	if seg.Done >= int64(part.Count) {
		return e.compose(ctx, id, rep, part.Count, seg.Rows, msgID, deliveryAttempt, log)
	}
	return e.State.CompletePartClaim(ctx, id, part, n)
}

// dropPart deletes a part's datasets once its segment is written, so a
// report's Redis footprint is bounded by its parts in flight.
func (e *Env) dropPart(ctx context.Context, id int64, rep report.Report, part state.Part, reads map[string]int64, log *slog.Logger) {
	drop := func(name string, attempt int64) {
		if err := e.State.DropPartAttempt(ctx, id, part, name, attempt); err != nil {
			log.Warn("could not drop the part's dataset; the hash's deletion will", "dataset", name, "error", err)
		}
	}
	for name, attempt := range reads {
		drop(name, attempt)
	}
	for n := 2; n <= len(rep.Stages); n++ {
		for _, src := range rep.Stages[n-1] {
			if src.Input == "" {
				continue
			}
			if a, err := e.State.PartInputAttempt(ctx, id, part, n); err == nil {
				drop(src.Input, a)
			}
		}
	}
}

// compose assembles the report's object from its parts' segments, once:
// the compose is claimed like a stage, and Compose's final step is
// conditional, so a takeover never changes a finished object.
func (e *Env) compose(ctx context.Context, id int64, rep report.Report, parts int, rows int64, msgID string, deliveryAttempt int, log *slog.Logger) error {
	ctx, span := tracing.Start(ctx, "compose the segments")
	defer span.End()
	claim, err := e.State.ClaimCompose(ctx, id, msgID, deliveryAttempt, e.Cfg.ClaimTTL)
	if err != nil {
		return err
	}
	if claim != state.Claimed {
		log.Info("compose claimed by another message; acking")
		return nil
	}
	if done, err := e.alreadyFinal(ctx, id, log); done || err != nil {
		return err
	}
	head, err := rep.CSV.Head()
	if err != nil {
		return err
	}
	segments := make([]string, parts)
	for i := range segments {
		segments[i] = output.SegmentName(id, i)
	}
	object := output.ObjectName(id, rep.Type)
	c, err := e.Store.Compose(ctx, object, head, segments)
	if errors.Is(err, output.ErrExists) {
		// An earlier run composed it from the same segments.
		log.Warn("the report's object was already composed; kept it", "object", object)
		err = nil
	}
	if err != nil {
		return err
	}
	log.Info("segments composed", "object", object, "segments", parts, "bytes", c.Size, "composes", c.Composes)
	return e.succeed(ctx, id, object, rows, log)
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
		if rec.Status == record.Failed {
			// A part that was still running when another part failed
			// the report may have written its segment since.
			e.deleteSegments(ctx, id, log)
		}
		return e.Announce.Announce(ctx, id, log)
	}
	// The listeners tell the aggregator when they find the hash missing,
	// so this is the one reason for every path that does.
	return fault.Permanentf("%s: %s is gone from Redis (expired after its TTL, deleted, or lost in a Redis restart) before stage %d finished; nothing was uploaded; request the export again",
		failreason.StateLost.Text(), e.State.Key(id), stage)
}

// Fail marks the record FAILED (if not final) and drops its hash and its
// parts' segments.
func (e *Env) Fail(ctx context.Context, _ *message.Envelope, h message.Header, reason string, log *slog.Logger) error {
	if h.Parts > 1 {
		reason = partReason(h, reason)
	}
	ok, err := e.Records.MarkFailed(ctx, h.RecordID, reason)
	if err != nil {
		return err
	}
	e.deleteState(ctx, h.RecordID, log)
	e.deleteSegments(ctx, h.RecordID, log)
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

// partReason names the part a failure happened in, unless the reason is
// the row limit's, which is the whole report's and stays word for word.
func partReason(h message.Header, reason string) string {
	if strings.HasPrefix(reason, "report exceeds ") {
		return reason
	}
	return fmt.Sprintf("%s (part %d of %d, %s)", reason, h.Part+1, h.Parts, report.DescribeBounds(h.ReportType, h.Bounds))
}

// deleteSegments removes a failed report's segments and composites, if
// any; a lifecycle rule is not needed for the ones this reaches.
func (e *Env) deleteSegments(ctx context.Context, id int64, log *slog.Logger) {
	if n, err := e.Store.DeletePrefix(ctx, output.SegmentPrefix(id)); err != nil {
		log.Warn("could not delete the report's segments", "prefix", output.SegmentPrefix(id), "error", err)
	} else if n > 0 {
		log.Info("deleted the failed report's segments", "objects", n)
	}
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
