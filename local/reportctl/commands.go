package reportctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// TimeFormat is how times are shown: RFC 3339 in UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Record is a record as -json prints it.
type Record struct {
	ID         int64           `json:"id"`
	ReportType string          `json:"reportType"`
	Params     json.RawMessage `json:"params"`
	Status     string          `json:"status"`
	FilePath   string          `json:"filePath,omitempty"`
	RowCount   *int64          `json:"rowCount,omitempty"` // SUCCESS only
	FailReason string          `json:"failReason,omitempty"`
	CreatedAt  string          `json:"createdAt"`
	UpdatedAt  string          `json:"updatedAt"`
	// Progress is what the hash says of a PENDING or PROCESSING record.
	Progress *client.Progress `json:"progress,omitempty"`
	// RetryOf is the FAILED record a retry repeats.
	RetryOf int64 `json:"retryOf,omitempty"`
	// Out is where request wrote the CSV.
	Out string `json:"out,omitempty"`
}

func recordJSON(rec record.Record, p *client.Progress) Record {
	r := Record{
		ID: rec.ID, ReportType: rec.ReportType, Params: rec.Params, Status: rec.Status.String(),
		FilePath: rec.FilePath, FailReason: rec.FailReason,
		CreatedAt: rec.CreatedAt.UTC().Format(TimeFormat), UpdatedAt: rec.UpdatedAt.UTC().Format(TimeFormat),
	}
	if !json.Valid(r.Params) {
		r.Params, _ = json.Marshal(string(rec.Params))
	}
	if rec.Status == record.Success {
		n := rec.RowCount
		r.RowCount = &n
	}
	if !rec.Status.Final() {
		r.Progress = p
	}
	return r
}

// get reads record id, its progress too when it is still running.
func (k *cmd) get(ctx context.Context, id int64) (record.Record, *client.Progress, error) {
	rec, err := k.c.Records.Get(ctx, id)
	if err != nil {
		return rec, nil, k.c.Classify(client.MariaDB, err)
	}
	if rec.Status.Final() {
		return rec, nil, nil
	}
	p, err := k.c.Look(ctx, rec)
	if err != nil {
		return rec, nil, err
	}
	return rec, &p, nil
}

// --- request ---

func (k *cmd) request(ctx context.Context, typ string, params []byte, out string, timeout time.Duration) error {
	if err := k.c.Ping(ctx, client.MariaDB, client.RabbitMQ, client.Redis); err != nil {
		return err
	}
	id, err := k.c.Request(ctx, typ, params)
	if err != nil {
		return refusedf("request refused: %w", err)
	}
	fmt.Fprintf(k.o.Stderr, "record %d requested (%s)\n", id, typ)
	rec, err := k.follow(ctx, id, timeout)
	if err != nil {
		return err
	}
	r := recordJSON(rec, nil)
	if rec.Status == record.Success && (out != "" || !k.asJSON) {
		body, err := k.c.Fetch(ctx, rec.FilePath)
		if err != nil {
			return err
		}
		if err := k.writeOut(out, body); err != nil {
			return err
		}
		r.Out = out
	}
	if k.asJSON {
		if err := k.printJSON(r); err != nil {
			return err
		}
	} else {
		k.summary(rec)
	}
	if rec.Status != record.Success {
		return errReportFailed
	}
	return nil
}

// follow shows id's progress on stderr until it is final or timeout.
func (k *cmd) follow(ctx context.Context, id int64, timeout time.Duration) (record.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	tick := time.NewTicker(k.o.Tick)
	defer tick.Stop()
	var last string
poll:
	for {
		rec, p, err := k.get(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				break poll
			}
			return rec, err
		}
		line := rec.Status.String()
		if p != nil {
			line = p.String()
		}
		elapsed := time.Since(start).Truncate(100 * time.Millisecond)
		if k.o.TTY {
			fmt.Fprintf(k.o.Stderr, "\r\033[K  %s · %s", line, elapsed)
			if rec.Status.Final() {
				fmt.Fprintln(k.o.Stderr)
			}
		} else if line != last {
			fmt.Fprintf(k.o.Stderr, "  %7s  %s\n", elapsed, line)
		}
		last = line
		if rec.Status.Final() {
			return rec, nil
		}
		select {
		case <-ctx.Done():
			break poll
		case <-tick.C:
		}
	}
	if k.o.TTY {
		fmt.Fprintln(k.o.Stderr)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return record.Record{}, fmt.Errorf("record %d not final after %s (last: %s); follow it with `reportctl status %d`", id, timeout, last, id)
	}
	return record.Record{}, fmt.Errorf("waiting for record %d: %w", id, ctx.Err())
}

// summary prints one final line about rec on stderr.
func (k *cmd) summary(rec record.Record) {
	switch rec.Status {
	case record.Success:
		fmt.Fprintf(k.o.Stderr, "record %d SUCCESS: %d rows at %s (%s)\n", rec.ID, rec.RowCount, rec.FilePath, took(rec))
	case record.Failed:
		fmt.Fprintf(k.o.Stderr, "record %d FAILED: %s\n", rec.ID, rec.FailReason)
	default:
		fmt.Fprintf(k.o.Stderr, "record %d %s\n", rec.ID, rec.Status)
	}
}

func took(rec record.Record) string {
	return "took " + rec.UpdatedAt.Sub(rec.CreatedAt).Round(time.Millisecond).String()
}

// --- status ---

func (k *cmd) status(ctx context.Context, id int64) error {
	if err := k.c.Ping(ctx, client.MariaDB); err != nil {
		return err
	}
	rec, p, err := k.get(ctx, id)
	if err != nil {
		return err
	}
	if k.asJSON {
		if err := k.printJSON(recordJSON(rec, p)); err != nil {
			return err
		}
	} else {
		k.describe(rec, p)
	}
	if rec.Status == record.Failed {
		return errReportFailed
	}
	return nil
}

// describe prints rec as status shows it.
func (k *cmd) describe(rec record.Record, p *client.Progress) {
	w := tabwriter.NewWriter(k.o.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "record %d\t%s\t%s\n", rec.ID, rec.ReportType, rec.Status)
	fmt.Fprintf(w, "  params\t%s\n", rec.Params)
	fmt.Fprintf(w, "  created\t%s\n", rec.CreatedAt.UTC().Format(TimeFormat))
	if rec.Status.Final() {
		fmt.Fprintf(w, "  finished\t%s (%s)\n", rec.UpdatedAt.UTC().Format(TimeFormat), took(rec))
	} else {
		fmt.Fprintf(w, "  updated\t%s\n", rec.UpdatedAt.UTC().Format(TimeFormat))
	}
	switch rec.Status {
	case record.Success:
		fmt.Fprintf(w, "  file\t%s\n", rec.FilePath)
		fmt.Fprintf(w, "  rows\t%d\n", rec.RowCount)
	case record.Failed:
		fmt.Fprintf(w, "  reason\t%s\n", rec.FailReason)
	}
	if p != nil {
		switch {
		case p.StateGone && rec.Status == record.Pending:
			fmt.Fprintf(w, "  state\tnone yet: DrainTriggers has not dispatched it (waiting in RabbitMQ)\n")
		case p.StateGone:
			fmt.Fprintf(w, "  state\tgone from Redis (expired, or the record is ending right now)\n")
		default:
			stage := fmt.Sprintf("%d of %d", p.Stage, p.Stages)
			if p.Writing {
				stage += ", every listener done: joining and writing the CSV"
			}
			fmt.Fprintf(w, "  stage\t%s\n", stage)
			if p.Parts > 1 {
				fmt.Fprintf(w, "  parts\t%d (key ranges, each run end to end on its own)\n", p.Parts)
				for n, d := range p.PartsDone {
					line := fmt.Sprintf("    stage %d\t%d of %d parts done", n+1, d, p.Parts)
					if n < len(p.PartsMissing) && len(p.PartsMissing[n]) > 0 && n+1 == p.Stage {
						line += ", missing parts " + client.ListParts(p.PartsMissing[n], p.Parts-d)
					}
					fmt.Fprintln(w, line)
				}
				fmt.Fprintf(w, "    segments\t%d of %d written\n", p.Segments, p.Parts)
			}
			if p.Parts > 1 {
				fmt.Fprintf(w, "  listeners\t%d of %d done (over all parts)\n", p.DoneCount, p.Expected)
			} else {
				fmt.Fprintf(w, "  listeners\t%d of %d done, %d rows so far\n", p.DoneCount, p.Expected, p.Rows)
			}
			for _, s := range p.Done {
				fmt.Fprintf(w, "    done\t%s (stage %d): %d rows\n", s.Source, s.Stage, s.Rows)
			}
			for _, s := range p.Missing {
				line := fmt.Sprintf("    missing\t%s (stage %d)", s.Source, s.Stage)
				if s.LastError != "" {
					line += ", last error: " + s.LastError
				}
				fmt.Fprintln(w, line)
			}
			if p.AggregatorError != "" {
				fmt.Fprintf(w, "  aggregator\tlast error: %s\n", p.AggregatorError)
			}
			fmt.Fprintf(w, "  state ttl\t%s\n", p.TTL.Round(time.Second))
		}
	}
	w.Flush()
}

// --- fetch ---

func (k *cmd) fetch(ctx context.Context, id int64, out string, link bool) error {
	if link && k.c.Completion.SignedURLTTL <= 0 {
		return usagef("fetch -url: %w", client.ErrNoSigning)
	}
	if err := k.c.Ping(ctx, client.MariaDB); err != nil {
		return err
	}
	rec, err := k.c.Records.Get(ctx, id)
	if err != nil {
		return k.c.Classify(client.MariaDB, err)
	}
	if err := hasFile(rec); err != nil {
		return err
	}
	if link {
		l, err := k.c.Sign(ctx, rec.FilePath)
		if err != nil {
			return fmt.Errorf("fetch -url %d: %w", id, err)
		}
		if k.asJSON {
			return k.printJSON(Fetched{ID: rec.ID, FilePath: rec.FilePath, RowCount: rec.RowCount, URL: l.URL, Expires: l.Expires.UTC().Format(TimeFormat)})
		}
		fmt.Fprintln(k.o.Stdout, l.URL)
		fmt.Fprintf(k.o.Stderr, "signed link to %s, valid until %s (SIGNED_URL_TTL %s)\n", rec.FilePath, l.Expires.UTC().Format(TimeFormat), k.c.Completion.SignedURLTTL)
		return nil
	}
	body, err := k.c.Fetch(ctx, rec.FilePath)
	if err != nil {
		return err
	}
	if err := k.writeOut(out, body); err != nil {
		return err
	}
	if k.asJSON {
		return k.printJSON(Fetched{ID: rec.ID, FilePath: rec.FilePath, Out: out, Bytes: len(body), RowCount: rec.RowCount})
	}
	return nil
}

// Fetched is what fetch -json prints.
type Fetched struct {
	ID       int64  `json:"id"`
	FilePath string `json:"filePath"`
	Out      string `json:"out,omitempty"`
	Bytes    int    `json:"bytes,omitempty"`
	RowCount int64  `json:"rowCount"`
	URL      string `json:"url,omitempty"`
	Expires  string `json:"expires,omitempty"`
}

// hasFile refuses records without a CSV, saying why.
func hasFile(rec record.Record) error {
	switch {
	case rec.Status == record.Failed:
		return refusedf("record %d FAILED, so it has no file: %s", rec.ID, rec.FailReason)
	case !rec.Status.Final():
		return refusedf("record %d is %s: no file yet (follow it with `reportctl status %d`)", rec.ID, rec.Status, rec.ID)
	case rec.FilePath == "":
		return refusedf("record %d is %s but names no file", rec.ID, rec.Status)
	}
	return nil
}

// --- list ---

func (k *cmd) list(ctx context.Context, q record.Query) error {
	if err := k.c.Ping(ctx, client.MariaDB); err != nil {
		return err
	}
	recs, err := k.c.Records.List(ctx, q)
	if err != nil {
		return k.c.Classify(client.MariaDB, err)
	}
	out := make([]Record, 0, len(recs))
	for _, rec := range recs {
		var p *client.Progress
		if !rec.Status.Final() {
			pp, err := k.c.Look(ctx, rec)
			if err != nil {
				return err
			}
			p = &pp
		}
		out = append(out, recordJSON(rec, p))
	}
	if k.asJSON {
		return k.printJSON(out)
	}
	if len(out) == 0 {
		fmt.Fprintln(k.o.Stderr, "no records match")
		return nil
	}
	w := tabwriter.NewWriter(k.o.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTYPE\tSTATUS\tROWS\tCREATED\tTOOK\tFILE / REASON / PROGRESS")
	for i, rec := range recs {
		rows, spent, what := "-", "-", ""
		switch {
		case rec.Status == record.Success:
			rows, spent, what = strconv.FormatInt(rec.RowCount, 10), took(rec)[5:], rec.FilePath
		case rec.Status == record.Failed:
			spent, what = took(rec)[5:], oneLine(rec.FailReason, 100)
		default:
			what = oneLine(strings.TrimPrefix(out[i].Progress.String(), rec.Status.String()+" "), 160)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", rec.ID, rec.ReportType, rec.Status, rows, rec.CreatedAt.UTC().Format(TimeFormat), spent, what)
	}
	return w.Flush()
}

// oneLine shortens s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// --- retry ---

func (k *cmd) retry(ctx context.Context, id int64) error {
	if err := k.c.Ping(ctx, client.MariaDB, client.RabbitMQ); err != nil {
		return err
	}
	old, err := k.c.Records.Get(ctx, id)
	if err != nil {
		return k.c.Classify(client.MariaDB, err)
	}
	if old.Status != record.Failed {
		return refusedf("record %d is %s: only FAILED records are retried (a new record repeats it; final statuses never change)", id, old.Status)
	}
	nid, err := k.c.Request(ctx, old.ReportType, old.Params)
	if err != nil {
		return err
	}
	rec, err := k.c.Records.Get(ctx, nid)
	if err != nil {
		return k.c.Classify(client.MariaDB, err)
	}
	if k.asJSON {
		r := recordJSON(rec, nil)
		r.RetryOf = id
		return k.printJSON(r)
	}
	fmt.Fprintf(k.o.Stderr, "record %d requested (%s), a retry of FAILED record %d, which stays as it is\n", nid, rec.ReportType, id)
	fmt.Fprintln(k.o.Stdout, nid)
	return nil
}

// --- cancel ---

func (k *cmd) cancel(ctx context.Context, id int64) error {
	if err := k.c.Ping(ctx, client.MariaDB, client.Redis); err != nil {
		return err
	}
	rec, err := k.c.Records.Get(ctx, id)
	if err != nil {
		return k.c.Classify(client.MariaDB, err)
	}
	if rec.Status.Final() {
		return refusedf("record %d is already %s: only PENDING or PROCESSING records are cancelled", id, rec.Status)
	}
	ok, err := k.c.Records.MarkFailed(ctx, id, CancelReason)
	if err != nil {
		return k.c.Classify(client.MariaDB, err)
	}
	if !ok {
		// It ended between the read and the update.
		if rec, err = k.c.Records.Get(ctx, id); err != nil {
			return k.c.Classify(client.MariaDB, err)
		}
		return refusedf("record %d became %s meanwhile: only PENDING or PROCESSING records are cancelled", id, rec.Status)
	}
	// Final first, then the hash, then the event, as every function ends
	// a report: a listener still running finds the record final and stops.
	// The event goes out even when the hash could not be removed (its TTL
	// will): the record is final either way.
	var errs []error
	if err := k.c.State.Delete(ctx, id); err != nil {
		errs = append(errs, fmt.Errorf("record %d is FAILED (cancelled) but its Redis state was not removed (it expires with its TTL): %w", id, k.c.Classify(client.Redis, err)))
	}
	if err := k.c.Announce(ctx, id); err != nil {
		// Nothing retries the CLI; a trigger naming a final record makes
		// DrainTriggers announce it.
		errs = append(errs, fmt.Errorf("record %d is FAILED (cancelled) but its completion event was not published; `reportctl publish %d` has DrainTriggers announce it: %w", id, id, err))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if rec, err = k.c.Records.Get(ctx, id); err != nil {
		return k.c.Classify(client.MariaDB, err)
	}
	if k.asJSON {
		return k.printJSON(recordJSON(rec, nil))
	}
	fmt.Fprintf(k.o.Stderr, "record %d cancelled: FAILED (%s), its Redis state removed, its completion event published\n", id, rec.FailReason)
	return nil
}

// --- parked ---

func (k *cmd) parked(ctx context.Context, limit int) error {
	ps, err := k.c.Parked(ctx, limit)
	if err != nil {
		return err
	}
	if k.asJSON {
		if ps == nil {
			ps = []client.Parked{}
		}
		return k.printJSON(ps)
	}
	parkedSub := topology.Names{Prefix: k.c.PubSub.NamePrefix}.Sub(topology.SubParked)
	if len(ps) == 0 {
		fmt.Fprintf(k.o.Stderr, "no parked triggers in %s, no parked messages in %s\n", k.c.ParkedQueue, parkedSub)
		return nil
	}
	w := tabwriter.NewWriter(k.o.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REQUEUE\tWHERE\tRECORD\tHANDLER\tSUBSCRIPTION\tBODY\tREASON")
	triggers := 0
	for _, p := range ps {
		where, rec := k.c.ParkedQueue, "-"
		if p.Where == client.InPubSub {
			where = parkedSub
		} else {
			triggers++
		}
		if p.RecordID > 0 {
			rec = strconv.FormatInt(p.RecordID, 10)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Requeue, where, rec, orDash(p.Handler), orDash(p.Subscription), strconv.Quote(oneLine(p.Body, 40)), oneLine(p.Reason, 160))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(k.o.Stderr, "%d parked in %s, %d in %s; after a fix, `reportctl parked -requeue REQUEUE` moves one back (a trigger to %s, a message to the topic it was parked from)\n",
		triggers, k.c.ParkedQueue, len(ps)-triggers, parkedSub, k.c.TriggerQueue)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Requeued is what parked -requeue -json prints.
type Requeued struct {
	client.Parked
	// Queue is the trigger queue, or the topic a message went back to.
	Queue string `json:"requeuedTo"`
}

func (k *cmd) requeue(ctx context.Context, key string) error {
	p, err := k.c.Requeue(ctx, key)
	if err != nil {
		return err
	}
	if k.asJSON {
		return k.printJSON(Requeued{Parked: p, Queue: k.c.TriggerQueue})
	}
	fmt.Fprintf(k.o.Stderr, "moved parked trigger %s (body %q, parked because: %s) back to %s\n", p.Requeue, oneLine(p.Body, 40), p.Reason, k.c.TriggerQueue)
	return nil
}

func (k *cmd) requeueMessage(ctx context.Context, id string) error {
	p, topic, err := k.c.RequeueMessage(ctx, id)
	if err != nil {
		return err
	}
	if k.asJSON {
		return k.printJSON(Requeued{Parked: p, Queue: topic})
	}
	fmt.Fprintf(k.o.Stderr, "moved parked message %s (body %q, parked by %s because: %s) back to topic %s, which %s reads\n", id, oneLine(p.Body, 40), p.Handler, p.Reason, topic, p.Subscription)
	return nil
}

// --- publish ---

// Published is what publish -json prints.
type Published struct {
	Body  string `json:"body"`
	Queue string `json:"queue"`
}

func (k *cmd) publish(ctx context.Context, body string) error {
	if err := k.c.Publish(ctx, []byte(body)); err != nil {
		return err
	}
	if k.asJSON {
		return k.printJSON(Published{Body: body, Queue: k.c.TriggerQueue})
	}
	fmt.Fprintf(k.o.Stderr, "published %q to %s\n", body, k.c.TriggerQueue)
	return nil
}
