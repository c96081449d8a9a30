// Package client does what the upstream service and an operator do against
// a running stack (or production): insert a record, publish its ID to
// RabbitMQ, watch it reach a final status, read its progress from the
// Redis hash, fetch the CSV, and look after the parked triggers.
package client

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/rabbitmq"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// Client talks to one stack.
type Client struct {
	Records      *record.Repo
	State        *state.Store
	AMQPURL      string
	TriggerQueue string
	ParkedQueue  string
	// StorageURL is the emulator's base URL, "http://127.0.0.1:4443".
	// Fetch uses it when Storage is nil.
	StorageURL string
	// Storage, when set, is a Cloud Storage client (production) that Fetch
	// uses instead of the emulator's URL.
	Storage *storage.Client
	// PassiveTrigger makes Publish only check that the trigger queue exists:
	// in production the upstream owns it, maybe with arguments (a quorum
	// queue) that our declaration would contradict.
	PassiveTrigger bool
	// Where describes each server for messages about it (no secrets);
	// FromEnv fills it. Ping needs DB and Redis.
	Where map[Server]string
	DB    *sql.DB
	Redis redis.Cmdable
	// PubSub is where Announce publishes completion events
	// (GOOGLE_CLOUD_PROJECT, PUBSUB_NAME_PREFIX; PUBSUB_EMULATOR_HOST is
	// read by the Pub/Sub client).
	PubSub config.PubSub
	// Completion is how Sign signs links (SIGNED_URL_*).
	Completion config.Completion
	lazy       lazy
}

// Request inserts a PENDING record and publishes its ID, as upstream does.
func (c *Client) Request(ctx context.Context, reportType string, params []byte) (int64, error) {
	id, err := c.Records.Insert(ctx, reportType, params)
	if err != nil {
		return 0, c.Classify(MariaDB, err)
	}
	return id, c.Publish(ctx, []byte(strconv.FormatInt(id, 10)))
}

// dial opens a RabbitMQ connection; a failure is Unreachable.
func (c *Client) dial() (*amqp.Connection, error) {
	conn, err := rabbitmq.Dial(c.AMQPURL, "reportctl")
	if err != nil {
		return nil, &Unreachable{Server: RabbitMQ, Where: c.where(RabbitMQ), Err: err, Answered: !dialFailed(err)}
	}
	return conn, nil
}

// Publish sends one trigger body to the trigger queue and waits for the
// broker's confirm.
func (c *Client) Publish(ctx context.Context, body []byte) error {
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp channel: %w", err)
	}
	if c.PassiveTrigger {
		if _, err := ch.QueueDeclarePassive(c.TriggerQueue, true, false, false, false, nil); err != nil {
			return fmt.Errorf("trigger queue %s does not exist on RabbitMQ at %s (DrainTriggers declares it locally: is `make up` running? in production the upstream declares it; check TRIGGER_QUEUE): %w", c.TriggerQueue, c.where(RabbitMQ), err)
		}
	} else if err := trigger.DeclareTrigger(ch, c.TriggerQueue); err != nil {
		// The upstream owns the trigger queue; this client stands in for it.
		return err
	}
	return publishConfirmed(ctx, ch, c.TriggerQueue, amqp.Publishing{ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: body})
}

// publishConfirmed puts ch in confirm mode and publishes msg to queue
// through the default exchange with rabbitmq.PublishConfirmed.
func publishConfirmed(ctx context.Context, ch *amqp.Channel, queue string, msg amqp.Publishing) error {
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("amqp confirm mode: %w", err)
	}
	return rabbitmq.PublishConfirmed(ctx, ch, "", queue, msg)
}

// SourceState is one listener of a report, as the hash says.
type SourceState struct {
	Stage  int    `json:"stage"`
	Source string `json:"source"`
	// Rows the listener fetched (its counted dataset), once done.
	Rows int64 `json:"rows,omitempty"`
	// LastError is the error the listener recorded before its last retry.
	LastError string `json:"lastError,omitempty"`
}

// Progress is one look at a running report.
type Progress struct {
	Status record.Status `json:"-"`
	// Stage is the stage under way: the first whose listeners are not all
	// done, or the last one once all are (the CSV is being written).
	Stage     int   `json:"stage"`
	Stages    int   `json:"stages"`
	DoneCount int64 `json:"listenersDone"`
	Expected  int64 `json:"listenersTotal"` // listeners in all stages
	// Rows is the rows fetched so far by the listeners that are done.
	Rows    int64         `json:"rowsSoFar"`
	Done    []SourceState `json:"done"`
	Missing []SourceState `json:"missing"`
	// Writing means every listener is done: the aggregator joins and uploads.
	Writing bool `json:"writingCsv"`
	// StateGone: no hash (not dispatched yet, or just ended).
	StateGone bool `json:"stateGone"`
	// AggregatorError is the aggregator's last recorded error, if any.
	AggregatorError string        `json:"aggregatorError,omitempty"`
	TTL             time.Duration `json:"-"`
	// Parts is the report's number of key-range parts; with more than
	// one, PartsDone[n-1] counts the parts that finished stage n,
	// PartsMissing[n-1] names them (from 0, at most MaxPartsListed) and
	// Segments counts the parts whose CSV segment is written. Done then
	// lists no listeners (each runs once per part), and Missing lists the
	// sources of the unfinished stage with the last error any of their
	// parts recorded.
	Parts        int     `json:"parts"`
	PartsDone    []int   `json:"partsDone,omitempty"`
	PartsMissing [][]int `json:"partsMissing,omitempty"`
	Segments     int     `json:"segmentsWritten,omitempty"`
}

// MaxPartsListed bounds PartsMissing per stage: a report may have
// hundreds of parts, and the first few are what a person reads.
const MaxPartsListed = 10

func (p Progress) String() string {
	if p.Status.Final() {
		return p.Status.String()
	}
	if p.StateGone {
		if p.Status == record.Pending {
			return "PENDING (waiting for DrainTriggers to dispatch it)"
		}
		return p.Status.String() + " (no state in Redis)"
	}
	s := fmt.Sprintf("%s stage %d/%d: %d/%d listeners done, %d rows so far", p.Status, p.Stage, p.Stages, p.DoneCount, p.Expected, p.Rows)
	if p.Parts > 1 {
		s = fmt.Sprintf("%s stage %d/%d: %d parts", p.Status, p.Stage, p.Stages, p.Parts)
		for n, d := range p.PartsDone {
			s += fmt.Sprintf(", stage %d %d/%d done", n+1, d, p.Parts)
			if n+1 == p.Stage && n < len(p.PartsMissing) && len(p.PartsMissing[n]) > 0 {
				s += " (missing parts " + ListParts(p.PartsMissing[n], p.Parts-d) + ")"
			}
		}
		s += fmt.Sprintf(", %d/%d segments written", p.Segments, p.Parts)
	}
	if p.Writing {
		s += ", writing the CSV"
	}
	for _, m := range p.Missing {
		if m.LastError != "" {
			s += fmt.Sprintf("; %s retrying after: %s", m.Source, m.LastError)
		}
	}
	if p.AggregatorError != "" {
		s += "; aggregator retrying after: " + p.AggregatorError
	}
	return s
}

// Look reads rec's progress from its hash. A final record, or one of an
// unknown report type, has no progress to read and returns just its status.
func (c *Client) Look(ctx context.Context, rec record.Record) (Progress, error) {
	p := Progress{Status: rec.Status}
	rep, ok := report.Lookup(rec.ReportType)
	if rec.Status.Final() || !ok || c.State == nil {
		return p, nil
	}
	p.Stages = len(rep.Stages)
	p.Expected = rep.DoneAfter(len(rep.Stages))
	snap, err := c.State.Read(ctx, rec.ID, rep.StageSources())
	if errors.Is(err, state.ErrGone) {
		p.StateGone = true
		return p, nil
	}
	if err != nil {
		return p, c.Classify(Redis, err)
	}
	p.DoneCount, p.TTL = snap.DoneCount, snap.TTL
	p.AggregatorError = snap.Errors[state.AggregatorName]
	p.Parts = snap.Parts
	if snap.Parts > 1 {
		return c.lookParts(ctx, rec, rep, p, snap)
	}
	attempts := map[string]int64{}
	for n, srcs := range rep.Stages {
		for _, src := range srcs {
			if snap.Done[n+1][src.Name()] {
				attempts[src.Dataset()] = snap.Attempts[n+1][src.Name()]
			}
		}
	}
	rd := c.State.Reader(rec.ID, attempts)
	for n, srcs := range rep.Stages {
		for _, src := range srcs {
			s := SourceState{Stage: n + 1, Source: src.Name()}
			if !snap.Done[n+1][src.Name()] {
				s.LastError = snap.Errors[src.Name()]
				p.Missing = append(p.Missing, s)
				if p.Stage == 0 {
					p.Stage = n + 1
				}
				continue
			}
			_, rows, err := rd.Meta(ctx, src.Dataset())
			if errors.Is(err, state.ErrGone) {
				// Ended between the two reads.
				p.StateGone = true
				return p, nil
			}
			if err != nil {
				return p, c.Classify(Redis, err)
			}
			s.Rows = rows
			p.Rows += rows
			p.Done = append(p.Done, s)
		}
	}
	if p.Stage == 0 {
		p.Stage, p.Writing = p.Stages, true
	}
	return p, nil
}

// lookParts is Look of a report split into parts: the parts done per
// stage and the segments written, from the hash's named fields only.
func (c *Client) lookParts(ctx context.Context, rec record.Record, rep report.Report, p Progress, snap state.Snapshot) (Progress, error) {
	pr, err := c.State.ReadProgress(ctx, rec.ID, rep.StageSources())
	if errors.Is(err, state.ErrGone) {
		p.StateGone = true
		return p, nil
	}
	if err != nil {
		return p, c.Classify(Redis, err)
	}
	p.Expected *= int64(pr.Parts)
	p.Segments = len(pr.Segments)
	for n := 1; n <= p.Stages; n++ {
		p.PartsDone = append(p.PartsDone, pr.StageDone(n))
		if p.Stage == 0 && pr.StageDone(n) < pr.Parts {
			p.Stage = n
		}
	}
	if p.Stage == 0 {
		p.Stage, p.Writing = p.Stages, true
		return p, nil
	}
	for n := range pr.Missing {
		p.PartsMissing = append(p.PartsMissing, pr.Missing[n][:min(len(pr.Missing[n]), MaxPartsListed)])
	}
	// Errors are recorded per source, not per part: the last part that
	// failed wrote it.
	for _, src := range rep.Stages[p.Stage-1] {
		p.Missing = append(p.Missing, SourceState{Stage: p.Stage, Source: src.Name(), LastError: snap.Errors[src.Name()]})
	}
	return p, nil
}

// ListParts prints parts (from 0) as a person counts them (from 1), with
// how many more there are than listed.
func ListParts(parts []int, missing int) string {
	var b strings.Builder
	for i, part := range parts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(part + 1))
	}
	if more := missing - len(parts); more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

// Wait polls until record id is SUCCESS or FAILED, calling progress on
// every change. A failed look at the hash is not fatal: the record in the
// database is what decides.
func (c *Client) Wait(ctx context.Context, id int64, progress func(Progress)) (record.Record, error) {
	var last string
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		rec, err := c.Records.Get(ctx, id)
		if err != nil {
			return rec, c.Classify(MariaDB, err)
		}
		p, err := c.Look(ctx, rec)
		if err != nil {
			p.StateGone = true
		}
		if s := p.String(); s != last && progress != nil {
			progress(p)
			last = s
		}
		if rec.Status.Final() {
			return rec, nil
		}
		select {
		case <-ctx.Done():
			return rec, fmt.Errorf("waiting for record %d: %w (last: %s)", id, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// SplitPath splits gs://bucket/object.
func SplitPath(gsPath string) (bucket, object string, err error) {
	rest, ok := strings.CutPrefix(gsPath, "gs://")
	bucket, object, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || bucket == "" || object == "" {
		return "", "", fmt.Errorf("not a gs:// path: %q", gsPath)
	}
	return bucket, object, nil
}

// Fetch downloads a gs://bucket/object path, from Cloud Storage if
// c.Storage is set, else from the emulator at c.StorageURL.
func (c *Client) Fetch(ctx context.Context, gsPath string) ([]byte, error) {
	bucket, object, err := SplitPath(gsPath)
	if err != nil {
		return nil, err
	}
	if c.Storage != nil {
		r, err := c.Storage.Bucket(bucket).Object(object).NewReader(ctx)
		if errors.Is(err, storage.ErrObjectNotExist) {
			return nil, fmt.Errorf("fetch %s: %w", gsPath, ErrObjectNotFound)
		}
		if err != nil {
			return nil, c.Classify(CloudStorage, fmt.Errorf("fetch %s: %w", gsPath, err))
		}
		defer r.Close()
		body, err := io.ReadAll(r)
		if err != nil {
			return nil, c.Classify(CloudStorage, fmt.Errorf("fetch %s: %w", gsPath, err))
		}
		return body, nil
	}
	u := fmt.Sprintf("%s/storage/v1/b/%s/o/%s?alt=media", strings.TrimSuffix(c.StorageURL, "/"), url.PathEscape(bucket), url.PathEscape(object))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, c.Classify(CloudStorage, fmt.Errorf("fetch %s: %w", gsPath, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", gsPath, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("fetch %s: %w", gsPath, ErrObjectNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: %s: %s", gsPath, resp.Status, body)
	}
	return body, nil
}

// ErrObjectNotFound means the record names an object the bucket does not
// hold (deleted by a lifecycle rule, or a different bucket).
var ErrObjectNotFound = errors.New("object not found")
