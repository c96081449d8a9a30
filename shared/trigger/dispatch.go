// Package trigger is DrainTriggers' logic: it consumes report triggers
// from RabbitMQ (with its retry, wait and parking policy), and dispatches
// each report: it reads the record, validates it, creates the Redis hash
// with its TTL, moves the record to PROCESSING and publishes stage 1.
package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/fanoutexport/fanoutexport/shared/bus"
	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// ErrNotTrigger marks a body that names no record: it is parked.
var ErrNotTrigger = errors.New("not a trigger")

// ParseTrigger reads a trigger body: the record ID as ASCII decimal
// digits, as a JSON string of them ("1111", what Spring AMQP's
// Jackson2JsonMessageConverter sends for a String ID; no escapes), or as
// JSON {"recordId":1111} (surrounding whitespace ignored); or, as Spring
// AMQP's default SimpleMessageConverter sends it, a Java-serialized
// java.lang.Long, Integer or String of digits (see parseJava).
func ParseTrigger(body []byte) (int64, error) {
	if bytes.HasPrefix(body, javaStream) {
		return parseJava(body)
	}
	id, err := parseText(body)
	if err != nil {
		// Said to the person who reads the park reason.
		return 0, fmt.Errorf("%w; %s", err, bodyHint)
	}
	return id, nil
}

// bodyHint says what a trigger is; it ends every refusal of a body that
// is not Java-serialized.
const bodyHint = "a trigger is the record ID as text (1111), as JSON (1111, \"1111\" or {\"recordId\":1111}) or Java-serialized (a Long, Integer or String); " +
	"from Spring AMQP, RabbitTemplate.convertAndSend(exchange, routingKey, id) with a Long id and Jackson2JsonMessageConverter sends 1111"

// parseText reads a body that is not Java-serialized.
func parseText(body []byte) (int64, error) {
	b := bytes.TrimSpace(body)
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	} else if len(b) > 0 && b[0] == '{' {
		// Unmarshal checks the syntax and rejects trailing text. The keys
		// are then read one by one: decoding into a struct would match
		// "RecordId" too and keep the last of two "recordId"s, guessing
		// which record a malformed body means.
		var whole json.RawMessage
		if err := json.Unmarshal(b, &whole); err != nil {
			return 0, fmt.Errorf("%w: JSON body: %v", ErrNotTrigger, err)
		}
		dec := json.NewDecoder(bytes.NewReader(whole))
		if _, err := dec.Token(); err != nil { // the '{', checked above
			return 0, fmt.Errorf("%w: JSON body: %v", ErrNotTrigger, err)
		}
		var id json.RawMessage // raw, so only a JSON number passes the digit check below
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return 0, fmt.Errorf("%w: JSON body: %v", ErrNotTrigger, err)
			}
			key, _ := tok.(string)
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return 0, fmt.Errorf("%w: JSON body: %v", ErrNotTrigger, err)
			}
			switch {
			case key == "recordId" && id != nil:
				return 0, fmt.Errorf(`%w: JSON body has "recordId" more than once`, ErrNotTrigger)
			case key == "recordId":
				id = v
			case bytes.EqualFold([]byte(key), []byte("recordId")):
				return 0, fmt.Errorf(`%w: JSON body has key %q; the key is "recordId", case-sensitive`, ErrNotTrigger, key)
			}
		}
		if id == nil {
			return 0, fmt.Errorf("%w: JSON body without recordId", ErrNotTrigger)
		}
		b = id
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, fmt.Errorf("%w: want a record ID of 1 to 19 digits", ErrNotTrigger)
	}
	if !allDigits(b) {
		return 0, fmt.Errorf("%w: want decimal digits", ErrNotTrigger)
	}
	return parseDigits(b)
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseDigits reads 1 to 19 ASCII digits as a positive record ID.
func parseDigits(b []byte) (int64, error) {
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: want a positive 64-bit record ID", ErrNotTrigger)
	}
	return id, nil
}

// Outcome says what Dispatch did.
type Outcome int

// Dispatch outcomes.
const (
	Dispatched Outcome = iota // stage 1 published
	Ignored                   // record already SUCCESS or FAILED
)

func (o Outcome) String() string {
	return [...]string{"dispatched", "ignored (record final)"}[o]
}

// Dispatcher starts reports.
type Dispatcher struct {
	Records *record.Repo
	State   *state.Store
	Bus     *bus.Bus
	// Limits hold new reports back (see admit.go); the zero value holds
	// none back.
	Limits Limits
	// Announce publishes the completion event of a record DrainTriggers makes
	// FAILED, or finds final: an upstream asks again by republishing the ID.
	Announce *completion.Announcer
	// Planner splits each report into parts; nil makes every report one part.
	Planner *Planner
}

// Dispatch starts record id (see dispatch); a trigger naming a final
// record announces that record again before it is acked, so an upstream
// that missed the event gets it by republishing the ID. behind says the
// trigger arrived while older ones wait for capacity: a new report then
// waits too, behind them.
func (d *Dispatcher) Dispatch(ctx context.Context, id int64, behind bool, log *slog.Logger) (Outcome, error) {
	o, err := d.dispatch(ctx, id, behind, log)
	if err == nil && o == Ignored {
		if err := d.Announce.Announce(ctx, id, log); err != nil {
			return 0, err
		}
	}
	return o, err
}

// dispatch starts record id. Its errors are classified where they arise:
// record.ErrNotFound as is (the caller waits a little: the upstream may
// publish before its transaction commits); a bad report type or params
// permanent (the record ends FAILED with the error as its reason); a record
// in a status this code does not know parked; anything else transient.
func (d *Dispatcher) dispatch(ctx context.Context, id int64, behind bool, log *slog.Logger) (Outcome, error) {
	rec, err := d.Records.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	if !rec.Status.Known() {
		return 0, fault.Parkf("record %d has status %d, which this deployment does not know; nothing was run", id, int8(rec.Status))
	}
	if rec.Status.Final() {
		log.Info("record already final; trigger ignored", "status", rec.Status.String())
		return Ignored, nil
	}
	rep, ok := report.Lookup(rec.ReportType)
	if !ok {
		return 0, fault.Permanent(failreason.UnknownType.Errorf(rec.ReportType, report.Types()))
	}
	params, err := report.ParseParams(rec.Params)
	if err != nil {
		return 0, fault.Permanent(err)
	}
	norm, err := json.Marshal(params)
	if err != nil {
		return 0, fmt.Errorf("marshal params: %w", err)
	}
	// Admission comes before the hash, so a trigger that must wait leaves
	// nothing in Redis. If the process dies between the two, the trigger
	// was not acked: its redelivery finds the record PROCESSING and
	// creates the hash then.
	if rec.Status == record.Pending {
		moved, err := d.admit(ctx, id, behind, log)
		if err != nil {
			return 0, err
		}
		if !moved {
			// Raced with another dispatch or a final update: look again.
			if rec, err = d.Records.Get(ctx, id); err != nil {
				return 0, err
			}
			if rec.Status.Final() {
				log.Info("record became final meanwhile; trigger ignored", "status", rec.Status.String())
				return Ignored, nil
			}
		}
	}
	plan, err := d.Planner.Plan(ctx, rep, params)
	if err != nil {
		// The estimate only sizes the fan-out: without it the report
		// still runs, as one part, rather than wait on a database the
		// listeners will retry against anyway.
		log.Warn("could not estimate the report's rows; running it as one part", "error", err)
		plan = report.Plan{Parts: []report.Bounds{{}}, Estimated: []int64{0}}
	}
	var planJSON []byte
	if len(plan.Parts) > 1 {
		if planJSON, err = json.Marshal(plan.Parts); err != nil {
			return 0, fmt.Errorf("marshal plan: %w", err)
		}
	}
	// A hash that exists already (a re-dispatch) keeps the plan its
	// parts run on: the messages below follow the stored one.
	created, parts, stored, err := d.State.CreateParts(ctx, id, rep.Type, norm, len(plan.Parts), planJSON)
	if err != nil {
		return 0, err
	}
	bounds, err := planBounds(parts, stored)
	if err != nil {
		return 0, err
	}
	if created {
		// Fence against re-running a finished report: the record was read
		// PROCESSING before the hash was found missing, and a run that
		// finished meanwhile marks the record final before it deletes the
		// hash. So a record still PROCESSING now had its state lost, and
		// a final one must not run again: drop the hash just made.
		if rec, err = d.Records.Get(ctx, id); err != nil {
			return 0, err
		}
		if rec.Status.Final() {
			if err := d.State.Delete(ctx, id); err != nil {
				log.Warn("could not delete the hash made for a record final meanwhile; its TTL will", "error", err)
			}
			log.Info("record became final while the trigger was read; nothing dispatched", "status", rec.Status.String())
			return Ignored, nil
		}
	}
	for i, b := range bounds {
		msg := message.Stage{V: message.SchemaVersion, RecordID: id, ReportType: rep.Type, Stage: 1,
			Sources: rep.SourceNames(1), Params: norm, Chunks: message.ChunksS2, PartOf: message.PartOf{Part: i, Parts: parts, Bounds: b}}
		msgID, err := d.Bus.PublishJSON(ctx, topology.StageTopic(1), msg, msg.Attributes())
		if err != nil {
			return 0, err
		}
		if parts > 1 {
			log.Debug("part dispatched", "part", i, "parts", parts, "bounds", string(b), "messageId", msgID)
		} else {
			log.Debug("stage 1 published", "messageId", msgID)
		}
	}
	log.Info("report dispatched", "reportType", rep.Type, "parts", parts, "estimatedRows", plan.EstimatedRows, "hashCreated", created)
	return Dispatched, nil
}

// planBounds returns each part's bounds as its messages carry them, from
// the plan the hash stores: none for one part (every key).
func planBounds(parts int, stored []byte) ([]json.RawMessage, error) {
	if parts <= 1 {
		return []json.RawMessage{nil}, nil
	}
	var bounds []json.RawMessage
	if err := json.Unmarshal(stored, &bounds); err != nil || len(bounds) != parts {
		return nil, fault.Permanent(failreason.UnreadablePlan.Errorf(parts, len(bounds), err))
	}
	return bounds, nil
}

// Fail ends record id FAILED with reason, unless it is final already, and
// announces it either way.
func (d *Dispatcher) Fail(ctx context.Context, id int64, reason string, log *slog.Logger) error {
	ok, err := d.Records.MarkFailed(ctx, id, reason)
	if err != nil {
		return err
	}
	if !ok {
		return d.Announce.Announce(ctx, id, log)
	}
	log.Error("report FAILED", "reason", reason)
	if err := d.State.Delete(ctx, id); err != nil {
		log.Warn("could not delete the hash; its TTL will", "error", err)
	}
	return d.Announce.Ended(ctx, id, log)
}
