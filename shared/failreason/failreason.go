// Package failreason declares, once, every reason a record can end FAILED
// with: the text the code builds (a fmt format), how the README shows it,
// what it means and what a person should do. The code builds reasons only
// from these values, and the README's troubleshooting table is generated
// from All (go generate ./local/docs), so the table cannot fall behind.
//
// A reason's text is what users see in fail_reason and in the completion
// event's failReason: change a Format only together with the tests that pin
// it, and run go generate.
package failreason

import (
	"errors"
	"fmt"
	"strings"
)

// Reason is one way a record can end FAILED.
type Reason struct {
	// Format is the reason as the code builds it, a fmt format. Some
	// reasons continue past it (a detail after ": "); Format is the part
	// every such text starts with.
	Format string
	// Shown is Format as a reader sees it in the README: {name} for each
	// variable part, "…" where the code adds detail.
	Shown string
	// Means says what happened, for the README.
	Means string
	// Do says what a person should do about it, for the README.
	Do string
}

// Text is the reason with args filled in.
func (r *Reason) Text(args ...any) string { return fmt.Sprintf(r.Format, args...) }

// Errorf is the reason as an error, with args filled in; a %w verb in
// Format wraps its argument, as in fmt.Errorf.
func (r *Reason) Errorf(args ...any) error { return fmt.Errorf(r.Format, args...) }

// Sentinel is an error whose text is Format itself, for reasons without
// variable parts that callers find with errors.Is.
func (r *Reason) Sentinel() error { return errors.New(r.Format) }

// Lead is Format's fixed leading text: up to its first verb, without a
// trailing ": ".
func (r *Reason) Lead() string {
	lead, _, _ := strings.Cut(r.Format, "%")
	return strings.TrimSuffix(lead, ": ")
}

// The reasons, in the order the README lists them: roughly where in the
// pipeline they are met (DrainTriggers, listeners, Aggregate, datasets, limits,
// state, retries exhausted, sweeper, operator).
var (
	UnknownType = &Reason{
		Format: "unknown report_type %q; known types: %v",
		Shown:  "unknown report_type {type}; known types: [{types}]",
		Means:  "DrainTriggers read a record whose `report_type` this deployment does not define.",
		Do:     "Fix the upstream's `report_type` to one of the known types the reason lists (each defined in `shared/report`) and request again, or deploy the version that defines it first, then `reportctl retry ID`.",
	}
	InvalidParams = &Reason{
		Format: "invalid params: %s",
		Shown:  "invalid params: {what}",
		Means:  "The record's `params` are not what the report takes; the rest names the field and quotes what was sent (`tagIds`: 1 to 1000 positive integers; `from`, `to`: RFC 3339 times between the years 1000 and 9999, `from` before `to`; no field twice: `{key} appears more than once`).",
		Do:     "Request again with params fixed as the reason says (`retry` would copy the same bad params).",
	}
	ListenerParams = &Reason{
		Format: "listener %s: %w",
		Shown:  "listener {source}: {error}",
		Means:  "A listener could not use its stage message's params, usually followed by `invalid params: …`. DrainTriggers checked them already, so the listener runs other code than DrainTriggers.",
		Do:     "Deploy every function from the same commit, then `reportctl retry ID`.",
	}
	ListenerDecode = &Reason{
		Format: "listener %s could not decode its stage message: %w",
		Shown:  "listener {source} could not decode its stage message: {error}",
		Means:  "The stage message's body does not fit its schema: a publisher other than DrainTriggers, or mismatched versions.",
		Do:     "Check who publishes to `report-stage-1`/`report-stage-2`; deploy every function from the same commit; retry.",
	}
	ListenerUnknownType = &Reason{
		Format: "listener %s does not know report type %q at stage %d (deployed version older than DrainTriggers'?)",
		Shown:  "listener {source} does not know report type {type} at stage {n} (deployed version older than DrainTriggers'?)",
		Means:  "The listener is older than DrainTriggers (or the report's definition differs between them).",
		Do:     "Deploy every function from the same commit; retry.",
	}
	AggregatorDecode = &Reason{
		Format: "aggregator could not decode a done message: %w",
		Shown:  "aggregator could not decode a done message: {error}",
		Means:  "A \"done\" message on `report-aggregate` does not fit its schema: a foreign publisher or mismatched versions.",
		Do:     "As above: one commit everywhere, nothing else publishing to `report-aggregate`; retry.",
	}
	AggregatorUnknownType = &Reason{
		Format: "aggregator does not know report type %q (known: %v)",
		Shown:  "aggregator does not know report type {type} (known: [{types}])",
		Means:  "The aggregator is older than DrainTriggers or the listeners.",
		Do:     "Deploy every function from the same commit; retry.",
	}
	Aggregator = &Reason{
		Format: "aggregator: %w",
		Shown:  "aggregator: {error}",
		Means:  "The aggregator met an error retrying cannot fix while it joined a stage or wrote the CSV; the rest says which (one of the dataset rows below, or `invalid params`).",
		Do:     "Follow the row of the wrapped reason.",
	}
	NotInteger = &Reason{
		Format: "%s.%s: %q is not an integer",
		Shown:  "{source}.{column}: \"{value}\" is not an integer",
		Means:  "A listener read a value that is not an integer from a key or integer column (`user_id`, `tag_id`, `withdraw_id`, a count): the source table's column type or data is not what the report expects.",
		Do:     "Fix the row or the column's type in the source database, then retry.",
	}
	NotTime = &Reason{
		Format: "%s.%s: %q is not a date and time",
		Shown:  "{source}.{column}: \"{value}\" is not a date and time",
		Means:  "A listener read a NULL or a value of another type (text, a number) from a date-and-time column (`created_at`): the source table's column type or data is not what the report expects.",
		Do:     "Fix the row or the column's type (`DATETIME`) in the source database, then retry.",
	}
	BadInput = &Reason{
		Format: "input %s: bad user_id %q",
		Shown:  "input aggregate.stage1.user_id: bad user_id \"{value}\"",
		Means:  "Stage 2's input, written by the aggregator from stage 1, holds a user ID that is not an integer: the hash was changed by something else.",
		Do:     "Retry; if it comes back, check what else writes to the Redis keys (`REDIS_KEY_PREFIX`) and report a bug.",
	}
	DatasetMissing = &Reason{
		Format: "dataset missing",
		Shown:  "dataset missing",
		Means:  "A dataset chunk, its counts, or stage 2's committed input is not in the hash of a live report (usually after a prefix, then `: {key} field {field}`): evicted, deleted, or lost with a Redis restart.",
		Do:     "Check that Redis's `maxmemory-policy` is `noeviction` and that nothing deletes fields; retry.",
	}
	DatasetCorrupt = &Reason{
		Format: "dataset corrupt",
		Shown:  "dataset corrupt",
		Means:  "A dataset breaks its contract (encoding, counts, key order, a stage-2 row missing for a pair); the rest names the dataset, chunk and row.",
		Do:     "Check that no other program or deployment writes the same keys (`REDIS_KEY_PREFIX`, `REDIS_DB`); retry; if it comes back, report a bug with the reason.",
	}
	RowTooLarge = &Reason{
		Format: "row too large for a dataset chunk",
		Shown:  "row too large for a dataset chunk",
		Means:  "One source row encodes to more than 1 MiB; the rest names the dataset and row. Retrying cannot help.",
		Do:     "Shorten the offending value in the source table, or leave that row out with a narrower filter.",
	}
	RowLimit = &Reason{
		Format: "report exceeds %d rows; narrow the filter",
		Shown:  "report exceeds {N} rows; narrow the filter",
		Means:  "A listener's data or the CSV passed `MAX_REPORT_ROWS`.",
		Do:     "Request again with fewer tags or a shorter `from`–`to` range, or raise `MAX_REPORT_ROWS` if the deployment can take it.",
	}
	StateLost = &Reason{
		Format: "report state lost",
		Shown:  "report state lost",
		Means:  "The report's hash `FileDownloadRecordEntity-{ID}` is gone from Redis before the report finished (its TTL passed, it was deleted, or Redis restarted); from the aggregator the rest names the key and stage; from `Sweep` it is the whole reason, given once the PROCESSING record has been quiet for `RETRY_DELAY` + 2 minutes (a report whose dispatch DrainTriggers is still retrying stays PROCESSING; one whose retries ran out ends `DrainTriggers could not dispatch …` instead). Nothing was uploaded.",
		Do:     "Retry. If it recurs, look for Redis restarts or flushes, and for stages slower than `STATE_TTL` without writes.",
	}
	NotOurs = &Reason{
		Format: "the report's Redis key is not a report hash this service created",
		Shown:  "the report's Redis key is not a report hash this service created: {key} …",
		Means:  "The key the report needs holds something another program made (another type, or a hash without this service's mark); nothing was run and the key was left alone.",
		Do:     "Give this deployment its own `REDIS_KEY_PREFIX` or `REDIS_DB`; remove the foreign key only if you own it; retry.",
	}
	UnreadablePlan = &Reason{
		Format: "the report's hash holds an unreadable plan of %d parts (%d bounds read: %v); request the export again",
		Shown:  "the report's hash holds an unreadable plan of {n} parts ({k} bounds read: {error}); request the export again",
		Means:  "DrainTriggers re-dispatched a report whose hash's stored plan of parts it cannot read: something else wrote the hash.",
		Do:     "Request the export again; check what else writes to the Redis keys (`REDIS_KEY_PREFIX`).",
	}
	DispatchExhausted = &Reason{
		Format: "DrainTriggers could not dispatch the report after %d attempts: %v",
		Shown:  "DrainTriggers could not dispatch the report after {n} attempts: {error}",
		Means:  "DrainTriggers failed `MAX_ATTEMPTS` times, `RETRY_DELAY` apart, to start the report: the error names the call (database, Redis, Pub/Sub).",
		Do:     "Fix what the error names (reachability, credentials, quotas), then retry.",
	}
	DeadListener = &Reason{
		Format: "stage %d listener %s failed %s delivery attempts",
		Shown:  "stage {n} listener {source} failed {n} delivery attempts (report {type}); part {i} of {p}, {range}; report state already gone from Redis; last error from {source}: {error}",
		Means:  "`DeadLetter`: that listener answered with an error on every delivery (6, 60 s apart); for a report split into parts, `part {i} of {p}, user_id [{lo}, {hi})` names the key range that failed (the other parts stop, their segments are deleted). The middle part appears only when the hash was already gone; the last part, per listener, only when its last error was noted.",
		Do:     "Fix what the last error names (source database reachable, `DSN_…`, grants, timeouts), then retry.",
	}
	DeadAggregator = &Reason{
		Format: "stage %d aggregator failed %s delivery attempts",
		Shown:  "stage {n} aggregator failed {n} delivery attempts …",
		Means:  "`DeadLetter`: the aggregator failed every delivery of a \"done\" message (Redis, Cloud Storage, the record database, or a run longer than `CLAIM_TTL`); the rest as above.",
		Do:     "Fix what the last error names, then retry.",
	}
	Stuck = &Reason{
		Format: "report still PROCESSING after %s",
		Shown:  "report still PROCESSING after {duration}: …",
		Means:  "`Sweep`: the record was PROCESSING longer than `SWEEP_PROCESSING_AFTER`; the rest names the first unfinished stage with the listeners done and missing (`stage {n} of {m}; listeners done: …; missing: …`), or says every listener was done and the aggregator did not finish, or that the report type is unknown.",
		Do:     "Look at the missing listeners' (or `Aggregate`'s) logs and subscriptions for that record ID: not deployed, subscription missing, messages lost or parked (`reportctl parked`); fix, then retry.",
	}
	Cancelled = &Reason{
		Format: "cancelled by operator",
		Shown:  "cancelled by operator",
		Means:  "Someone ran `reportctl cancel ID`.",
		Do:     "Nothing, or `reportctl retry ID`.",
	}
)

// All is every reason, in the README's order.
var All = []*Reason{
	UnreadablePlan, UnknownType, InvalidParams, ListenerParams, ListenerDecode, ListenerUnknownType,
	AggregatorDecode, AggregatorUnknownType, Aggregator, NotInteger, NotTime, BadInput,
	DatasetMissing, DatasetCorrupt, RowTooLarge, RowLimit, StateLost, NotOurs,
	DispatchExhausted, DeadListener, DeadAggregator, Stuck, Cancelled,
}
