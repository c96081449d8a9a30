// Package stuck ends records the pipeline lost track of. Cloud Scheduler
// calls the Sweep function every few minutes (the local stack runs it in a
// loop); each run:
//
//   - republishes the ID of every record PENDING for longer than
//     SWEEP_PENDING_AFTER to the trigger queue, so DrainTriggers' in-flight
//     limit still applies, at most once per interval: the record's
//     updated_at is bumped first, by one guarded UPDATE that only one of
//     two concurrent sweepers can win. A PENDING record is never FAILED.
//   - FAILs every record PROCESSING whose report hash is gone, once it
//     has been quiet longer than DrainTriggers' retries of the hash's creation
//     leave it (LostAfter): "report state lost".
//   - FAILs every record PROCESSING for longer than SWEEP_PROCESSING_AFTER
//     with its hash, naming the stage and the listeners done and missing.
//
// Every update is guarded by the record's status and age, as the
// functions' own updates are, so a record that finishes meanwhile is left
// alone, and a record the sweeper makes final has its hash deleted.
package stuck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/rabbitmq"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/state"
)

// ReasonLost is the fail reason of a PROCESSING record without its hash.
var ReasonLost = failreason.StateLost.Text()

// LostMargin is how much longer than DrainTriggers' RETRY_DELAY a PROCESSING
// record without its hash must have been quiet before the hash counts as
// lost (see LostAfter).
const LostMargin = 2 * time.Minute

// LostAfter is how long a PROCESSING record without its hash must have
// been quiet before the hash counts as lost. DrainTriggers marks the record
// PROCESSING before it creates the hash; when creating it fails (Redis
// refusing, unreachable), it tries again RETRY_DELAY later, up to
// MAX_ATTEMPTS times, and touches the record each time it schedules a
// retry. So a record whose dispatch is being retried is never quiet much
// longer than retryDelay: the margin covers the wait for the next
// scheduled drain (every minute) and the attempt itself. Anything quieter
// for longer is no longer being retried.
func LostAfter(retryDelay time.Duration) time.Duration { return retryDelay + LostMargin }

// Batch bounds the records of each kind one run looks at; the rest wait
// for the next run.
const Batch = 500

// Sweeper is one function instance's sweeper.
type Sweeper struct {
	Cfg   config.Sweep
	Repo  *record.Repo
	State *state.Store
	Log   *slog.Logger
	// Announce publishes the completion event of each record the sweeper
	// FAILs. A sweeper built without one logs every such record as
	// unannounced, as an error.
	Announce *completion.Announcer
}

// Result says what one run did, by record ID.
type Result struct {
	Republished []int64 `json:"republished"`
	Lost        []int64 `json:"lost"`
	TimedOut    []int64 `json:"timedOut"`
}

// Run sweeps once. It goes on past a failure with one record and returns
// every error joined, with what it did.
func (s *Sweeper) Run(ctx context.Context) (Result, error) {
	var res Result
	var errs []error
	ids, err := s.republish(ctx)
	res.Republished = ids
	errs = append(errs, err)
	res.Lost, res.TimedOut, err = s.failProcessing(ctx)
	errs = append(errs, err)
	return res, errors.Join(errs...)
}

func (s *Sweeper) republish(ctx context.Context) ([]int64, error) {
	recs, err := s.Repo.Stale(ctx, record.Pending, s.Cfg.PendingAfter, Batch)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	pub, err := dial(s.Cfg)
	if err != nil {
		return nil, err
	}
	defer pub.close()
	var done []int64
	for _, rec := range recs {
		log := s.Log.With(logging.KeyRecordID, rec.ID)
		// Claim the interval first: of two sweepers only one wins, and a
		// publish that fails after the claim is retried one interval later.
		won, err := s.Repo.TouchStale(ctx, rec.ID, record.Pending, s.Cfg.PendingAfter)
		if err != nil {
			return done, err
		}
		if !won {
			continue
		}
		if err := pub.publish(ctx, s.Cfg.TriggerQueue, rec.ID); err != nil {
			return done, fmt.Errorf("republish record %d: %w", rec.ID, err)
		}
		log.Info("record PENDING too long; trigger republished", "queue", s.Cfg.TriggerQueue, "pendingSince", rec.UpdatedAt, "after", s.Cfg.PendingAfter.String())
		done = append(done, rec.ID)
	}
	return done, nil
}

func (s *Sweeper) failProcessing(ctx context.Context) (lost, timedOut []int64, _ error) {
	// Every record either check may end; each FailStale below applies its own age.
	lostAfter := LostAfter(s.Cfg.RetryDelay)
	recs, err := s.Repo.Stale(ctx, record.Processing, min(lostAfter, s.Cfg.ProcessingAfter), Batch)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, rec := range recs {
		log := s.Log.With(logging.KeyRecordID, rec.ID)
		var stages [][]string
		rep, known := report.Lookup(rec.ReportType)
		if known {
			stages = rep.StageSources()
		}
		snap, err := s.State.Read(ctx, rec.ID, stages)
		switch {
		case errors.Is(err, state.ErrGone):
			if s.fail(ctx, log, rec.ID, lostAfter, ReasonLost, &errs) {
				lost = append(lost, rec.ID)
			}
		case err != nil:
			errs = append(errs, err)
		default:
			// The hash is there: FailStale changes nothing unless the
			// record is past the limit by the database's clock.
			var pr state.Progress
			if known && snap.Parts > 1 {
				if pr, err = s.State.ReadProgress(ctx, rec.ID, stages); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			if s.fail(ctx, log, rec.ID, s.Cfg.ProcessingAfter, StuckParts(rep, known, snap, pr, s.Cfg.ProcessingAfter), &errs) {
				timedOut = append(timedOut, rec.ID)
			}
		}
	}
	return lost, timedOut, errors.Join(errs...)
}

// fail ends a PROCESSING record quiet for olderThan and deletes its hash.
func (s *Sweeper) fail(ctx context.Context, log *slog.Logger, id int64, olderThan time.Duration, reason string, errs *[]error) bool {
	ok, err := s.Repo.FailStale(ctx, id, record.Processing, olderThan, reason)
	if err != nil {
		*errs = append(*errs, err)
		return false
	}
	if !ok {
		return false // it moved on meanwhile
	}
	log.Warn("record FAILED by the sweeper", "reason", reason)
	if err := s.State.Delete(ctx, id); err != nil {
		*errs = append(*errs, err)
	}
	// No message to redeliver here: a failed announcement is an error of
	// this run, and the record stays FAILED without its event.
	if s.Announce == nil {
		log.Error("record FAILED but not announced: the sweeper has no completion announcer")
	} else if err := s.Announce.Ended(ctx, id, log); err != nil {
		*errs = append(*errs, err)
	}
	return true
}

// Stuck is the fail reason of a report PROCESSING past limit: the first
// stage whose listeners are not all done, with those done and missing.
func Stuck(rep report.Report, known bool, snap state.Snapshot, limit time.Duration) string {
	prefix := failreason.Stuck.Text(limit)
	if !known {
		return prefix + fmt.Sprintf(": report type %q is unknown", snap.ReportType)
	}
	stages := rep.StageSources()
	for i, srcs := range stages {
		n := i + 1
		var done, missing []string
		for _, src := range srcs {
			if snap.Done[n][src] {
				done = append(done, src)
			} else {
				missing = append(missing, src)
			}
		}
		if len(missing) > 0 {
			sort.Strings(done)
			sort.Strings(missing)
			return fmt.Sprintf("%s: stage %d of %d; listeners done: %s; missing: %s", prefix, n, len(stages), list(done), list(missing))
		}
	}
	return fmt.Sprintf("%s: every listener of its %d stage(s) done; the aggregator did not finish", prefix, len(stages))
}

// StuckParts is Stuck, and for a report split into parts (pr.Parts > 1)
// names, per stage, the parts done and the parts missing with their key
// ranges, then the segments written.
func StuckParts(rep report.Report, known bool, snap state.Snapshot, pr state.Progress, limit time.Duration) string {
	if !known || pr.Parts <= 1 {
		return Stuck(rep, known, snap, limit)
	}
	return fmt.Sprintf("report still PROCESSING after %s: %s", limit, partsDetail(rep, pr))
}

// partsDetail words a parts report's progress (no format literals: the
// README's reason check reads the one above).
func partsDetail(rep report.Report, pr state.Progress) string {
	itoa := strconv.Itoa
	var b strings.Builder
	b.WriteString(itoa(pr.Parts) + " parts")
	var bounds []json.RawMessage
	_ = json.Unmarshal(pr.Plan, &bounds) // unreadable: parts named without their range
	for n := 1; n <= len(pr.Missing); n++ {
		missing := pr.Missing[n-1]
		b.WriteString("; stage " + itoa(n) + ": " + itoa(pr.StageDone(n)) + " of " + itoa(pr.Parts) + " parts done")
		if len(missing) == 0 {
			continue
		}
		b.WriteString(", missing ")
		for i, p := range missing {
			if i == maxNamed {
				b.WriteString(" and " + itoa(len(missing)-maxNamed) + " more")
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("part " + itoa(p+1))
			if p < len(bounds) {
				b.WriteString(" (" + report.DescribeBounds(rep.Type, bounds[p]) + ")")
			}
		}
	}
	b.WriteString("; segments written: " + itoa(len(pr.Segments)) + " of " + itoa(pr.Parts))
	return b.String()
}

// maxNamed bounds the missing parts a reason names one by one.
const maxNamed = 8

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// publisher is one AMQP connection with a confirming channel.
type publisher struct {
	conn *amqp.Connection
	ch   *amqp.Channel
}

func dial(cfg config.Sweep) (*publisher, error) {
	conn, err := rabbitmq.Dial(cfg.AMQPURL, "report-sweep")
	if err != nil {
		return nil, err
	}
	p := &publisher{conn: conn}
	if p.ch, err = rabbitmq.ConfirmChannel(conn); err != nil {
		conn.Close()
		return nil, err
	}
	// The upstream owns the queue: check it exists rather than publish
	// into nothing (the default exchange drops unroutable messages).
	if _, err := p.ch.QueueDeclarePassive(cfg.TriggerQueue, true, false, false, false, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("amqp trigger queue %s: %w", cfg.TriggerQueue, err)
	}
	return p, nil
}

func (p *publisher) close() { p.conn.Close() }

// publish sends the trigger {"recordId":id}, persistent, and waits for the
// broker's confirm.
func (p *publisher) publish(ctx context.Context, queue string, id int64) error {
	return rabbitmq.PublishConfirmed(ctx, p.ch, "", queue, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent,
		Body: []byte(`{"recordId":` + strconv.FormatInt(id, 10) + `}`),
	})
}
