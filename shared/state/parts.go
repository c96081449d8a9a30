package state

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
)

// Part is one part of a report in its hash: Index (from 0) of Count. A
// part's done markers, claims, inputs and datasets carry a "/p{Index}"
// suffix after the names a report had before parts; the part of a
// one-part report (Count <= 1) keeps those names exactly, so a report
// started by the previous version drains on this one, and a small report
// costs no extra field.
type Part struct {
	Index int
	Count int
}

// Whole is the one part of a one-part report.
var Whole = Part{Index: 0, Count: 1}

// IsWhole reports whether p is the only part of its report.
func (p Part) IsWhole() bool { return p.Count <= 1 }

func (p Part) suffix() string {
	if p.IsWhole() {
		return ""
	}
	return "/p" + strconv.Itoa(p.Index)
}

// String names the part for logs and reasons: "part 3 of 8" (counted from 1).
func (p Part) String() string {
	if p.IsWhole() {
		return "the whole report"
	}
	return fmt.Sprintf("part %d of %d", p.Index+1, p.Count)
}

// Dataset is the part's name of a dataset: "{database}.{table}.{key}/p{i}".
func (p Part) Dataset(name string) string { return name + p.suffix() }

// Fields of the hash about parts.
const (
	// FieldParts holds the report's number of parts (absent: one, a
	// report dispatched before parts).
	FieldParts = "parts"
	// FieldPlan holds the plan's parts' bounds, as the dispatcher encoded them.
	FieldPlan = "plan"
	// FieldSegments counts the parts whose CSV segment is written.
	FieldSegments = "segmentsDone"
	// FieldSegmentRows sums the segments' data rows.
	FieldSegmentRows = "segmentRows"
	// FieldComposeClaim is the claim of the final compose.
	FieldComposeClaim = "claim:compose"
)

// PartDoneField marks (stage, source, part) as counted.
func PartDoneField(p Part, stage int, source string) string {
	return DoneField(stage, source) + p.suffix()
}

// PartClaimField holds the claim of (stage, part).
func PartClaimField(p Part, stage int) string { return ClaimField(stage) + p.suffix() }

// PartInputField holds the attempt of (stage, part)'s input dataset.
func PartInputField(p Part, stage int) string { return InputField(stage) + p.suffix() }

// PartCountField counts the part's done markers (queryDoneCount for a
// one-part report).
func PartCountField(p Part) string { return FieldDoneCount + p.suffix() }

// SegmentField marks the part's CSV segment as written and holds its rows.
func SegmentField(p Part) string { return "segment" + p.suffix() }

// CreateParts is Create for a report split into count parts, plan
// encoding their bounds. A hash that already exists (a re-dispatch) keeps
// its own plan: the one its parts already run on, returned with its count
// (1 for a hash made before parts).
func (s *Store) CreateParts(ctx context.Context, id int64, reportType string, params []byte, count int, plan []byte) (bool, int, []byte, error) {
	key := s.Key(id)
	res, err := createScript.Run(ctx, s.rdb, []string{key}, s.ttlMS(),
		FieldRecordID, id, FieldOwner, OwnerMark, FieldReportType, reportType, FieldParams, string(params),
		FieldCreatedAt, time.Now().UTC().Format(time.RFC3339Nano), FieldDoneCount, 0,
		FieldParts, max(count, 1), FieldPlan, string(plan)).Slice()
	if err != nil {
		return false, 0, nil, classify(fmt.Errorf("redis create %s: %w", key, err), key)
	}
	if n, _ := res[0].(int64); n < 0 {
		// The refusal, word for word as Create words it.
		_, err := s.Create(ctx, id, reportType, params)
		if err == nil {
			err = fmt.Errorf("%w: %s", ErrNotOurs, key)
		}
		return false, 0, nil, err
	}
	created := res[0].(int64) == 1
	vals, err := s.rdb.HMGet(ctx, key, FieldReportType, FieldParts, FieldPlan).Result()
	if err != nil {
		return false, 0, nil, classify(fmt.Errorf("redis hmget %s: %w", key, err), key)
	}
	if vals[0] == nil {
		return false, 0, nil, gone(key)
	}
	got, stored := partsOf(vals[1], vals[2])
	return created, got, stored, nil
}

func partsOf(parts, plan any) (int, []byte) {
	ps, _ := parts.(string)
	n, err := strconv.Atoi(ps)
	if err != nil || n < 1 {
		return 1, nil
	}
	pl, _ := plan.(string)
	if pl == "" {
		return n, nil
	}
	return n, []byte(pl)
}

var partDoneScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0} end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[8]) == 0 then
  return {0, tonumber(redis.call('HGET', KEYS[1], ARGV[9]) or '0'), tonumber(redis.call('HGET', KEYS[1], ARGV[2])) or 0}
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
redis.call('HDEL', KEYS[1], ARGV[7])
redis.call('HINCRBY', KEYS[1], 'queryDoneCount', 1)
return {1, redis.call('HINCRBY', KEYS[1], ARGV[9], 1), tonumber(ARGV[8])}`)

// MarkPartDone is MarkDone for one part: the (stage, source, part) marker,
// queryDoneCount (every part's markers) and the part's own count move in
// one atomic step, once; Count is the part's count.
func (s *Store) MarkPartDone(ctx context.Context, id int64, p Part, stage int, source, name string, attempt, chunks, rows int64) (Done, error) {
	if p.IsWhole() {
		return s.MarkDone(ctx, id, stage, source, name, attempt, chunks, rows)
	}
	key := s.Key(id)
	an := AttemptName(p.Dataset(name), attempt)
	res, err := partDoneScript.Run(ctx, s.rdb, []string{key}, s.ttlMS(), PartDoneField(p, stage, source),
		dataset.ChunksField(an), chunks, dataset.RowsField(an), rows, ErrorField(source), attempt, PartCountField(p)).Int64Slice()
	if err != nil {
		return Done{}, classify(fmt.Errorf("redis mark done %s %s %s: %w", key, source, p, err), key)
	}
	if res[0] < 0 {
		return Done{}, gone(key)
	}
	return Done{Counted: res[0] == 1, Count: res[1], Attempt: res[2]}, nil
}

// IsPartDone reports whether source already finished (stage, part).
func (s *Store) IsPartDone(ctx context.Context, id int64, p Part, stage int, source string) (bool, error) {
	if p.IsWhole() {
		return s.IsDone(ctx, id, stage, source)
	}
	key := s.Key(id)
	vals, err := s.rdb.HMGet(ctx, key, FieldReportType, PartDoneField(p, stage, source)).Result()
	if err != nil {
		return false, classify(fmt.Errorf("redis hmget %s: %w", key, err), key)
	}
	if vals[0] == nil {
		return false, gone(key)
	}
	return vals[1] != nil, nil
}

// PartReader is Reader over part p's datasets.
func (s *Store) PartReader(id int64, p Part, attempts map[string]int64) *PartStore {
	return &PartStore{datasets{s: s, id: id, part: p, attempts: attempts}}
}

// PartWriter is Writer over part p's datasets.
func (s *Store) PartWriter(id int64, p Part, guard string, attempt int64, reads map[string]int64) *PartStore {
	return &PartStore{datasets{s: s, id: id, part: p, guard: guard, attempt: attempt, attempts: reads}}
}

// PartStore reads and writes one part's datasets (a dataset.WriteStore).
type PartStore struct{ datasets }

// DropPartAttempt is DropAttempt of part p's dataset name.
func (s *Store) DropPartAttempt(ctx context.Context, id int64, p Part, name string, attempt int64) error {
	return s.DropAttempt(ctx, id, p.Dataset(name), attempt)
}

// CommitPartInput is CommitInput for (stage, part).
func (s *Store) CommitPartInput(ctx context.Context, id int64, p Part, stage int, attempt int64) (int64, error) {
	if p.IsWhole() {
		return s.CommitInput(ctx, id, stage, attempt)
	}
	key := s.Key(id)
	n, err := commitInputScript.Run(ctx, s.rdb, []string{key}, s.ttlMS(), PartInputField(p, stage), attempt).Int64()
	if err != nil {
		return 0, classify(fmt.Errorf("redis commit input %s stage %d %s: %w", key, stage, p, err), key)
	}
	if n < 0 {
		return 0, gone(key)
	}
	return n, nil
}

// PartInputAttempt is InputAttempt for (stage, part).
func (s *Store) PartInputAttempt(ctx context.Context, id int64, p Part, stage int) (int64, error) {
	if p.IsWhole() {
		return s.InputAttempt(ctx, id, stage)
	}
	key := s.Key(id)
	vals, err := s.rdb.HMGet(ctx, key, FieldReportType, PartInputField(p, stage)).Result()
	if err != nil {
		return 0, classify(fmt.Errorf("redis hmget %s: %w", key, err), key)
	}
	if vals[0] == nil {
		return 0, gone(key)
	}
	v, _ := vals[1].(string)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s has no committed input for stage %d %s", dataset.ErrMissing, key, stage, p)
	}
	return n, nil
}

// ClaimPart is Claim of (stage, part).
func (s *Store) ClaimPart(ctx context.Context, id int64, p Part, stage int, msgID string, deliveryAttempt int, hold time.Duration) (ClaimResult, error) {
	if p.IsWhole() {
		return s.Claim(ctx, id, stage, msgID, deliveryAttempt, hold)
	}
	return s.claimField(ctx, id, PartClaimField(p, stage), msgID, deliveryAttempt, hold)
}

// CompletePartClaim is CompleteClaim of (stage, part).
func (s *Store) CompletePartClaim(ctx context.Context, id int64, p Part, stage int) error {
	return s.set(ctx, id, PartClaimField(p, stage), "done")
}

// ClaimCompose claims the final compose of a report's segments, with
// Claim's rules: the owning message's later delivery, or any message after
// the claim expired, takes it over.
func (s *Store) ClaimCompose(ctx context.Context, id int64, msgID string, deliveryAttempt int, hold time.Duration) (ClaimResult, error) {
	return s.claimField(ctx, id, FieldComposeClaim, msgID, deliveryAttempt, hold)
}

func (s *Store) claimField(ctx context.Context, id int64, field, msgID string, deliveryAttempt int, hold time.Duration) (ClaimResult, error) {
	key := s.Key(id)
	n, err := claimScript.Run(ctx, s.rdb, []string{key}, s.ttlMS(), field, msgID, hold.Milliseconds(), max(deliveryAttempt, 1)).Int()
	if err != nil {
		return 0, classify(fmt.Errorf("redis claim %s %s: %w", key, field, err), key)
	}
	switch n {
	case -1:
		return 0, gone(key)
	case 0:
		return Held, nil
	case 2:
		return Completed, nil
	}
	return Claimed, nil
}

var segmentScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0} end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'segmentsDone') or '0'), tonumber(redis.call('HGET', KEYS[1], 'segmentRows') or '0')}
end
local rows = redis.call('HINCRBY', KEYS[1], 'segmentRows', ARGV[3])
return {1, redis.call('HINCRBY', KEYS[1], 'segmentsDone', 1), rows}`)

// Segments is what MarkSegment did.
type Segments struct {
	Counted bool  // this call counted the part's segment
	Done    int64 // segments written so far
	Rows    int64 // their data rows, summed
}

// MarkSegment records that part p's CSV segment, of rows data rows, is
// written, once: the marker, the count of segments and the sum of their
// rows move in one atomic step, so a duplicate never counts twice.
func (s *Store) MarkSegment(ctx context.Context, id int64, p Part, rows int64) (Segments, error) {
	key := s.Key(id)
	res, err := segmentScript.Run(ctx, s.rdb, []string{key}, s.ttlMS(), SegmentField(p), rows).Int64Slice()
	if err != nil {
		return Segments{}, classify(fmt.Errorf("redis mark segment %s %s: %w", key, p, err), key)
	}
	if res[0] < 0 {
		return Segments{}, gone(key)
	}
	return Segments{Counted: res[0] == 1, Done: res[1], Rows: res[2]}, nil
}

// SegmentRows returns part p's segment's rows, and whether it is written.
func (s *Store) SegmentRows(ctx context.Context, id int64, p Part) (int64, bool, error) {
	key := s.Key(id)
	vals, err := s.rdb.HMGet(ctx, key, FieldReportType, SegmentField(p)).Result()
	if err != nil {
		return 0, false, classify(fmt.Errorf("redis hmget %s: %w", key, err), key)
	}
	if vals[0] == nil {
		return 0, false, gone(key)
	}
	v, ok := vals[1].(string)
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("redis %s %s: bad segment rows %q", key, SegmentField(p), v)
	}
	return n, true, nil
}

// Progress is how far each part of a report got, read from named fields
// only (never the chunks): for reportctl status and the sweeper.
type Progress struct {
	Parts int
	// Plan is the plan's bounds as the dispatcher stored them (nil for
	// one part).
	Plan []byte
	// Missing lists, per stage (Missing[n-1] for stage n), the parts
	// (from 0) some source of that stage has not finished.
	Missing [][]int
	// Segments lists the parts whose CSV segment is written (several
	// parts only; a one-part report writes its object at once).
	Segments []int
}

// StageDone is the number of parts that finished stage n.
func (pr Progress) StageDone(n int) int {
	if n < 1 || n > len(pr.Missing) {
		return 0
	}
	return pr.Parts - len(pr.Missing[n-1])
}

// ReadProgress reads the progress of record id over the given stages'
// sources (stages[n-1] lists stage n's). ErrGone if the hash is gone.
func (s *Store) ReadProgress(ctx context.Context, id int64, stages [][]string) (Progress, error) {
	key := s.Key(id)
	vals, err := s.rdb.HMGet(ctx, key, FieldReportType, FieldParts, FieldPlan).Result()
	if err != nil {
		return Progress{}, classify(fmt.Errorf("redis hmget %s: %w", key, err), key)
	}
	if vals[0] == nil {
		return Progress{}, gone(key)
	}
	pr := Progress{}
	pr.Parts, pr.Plan = partsOf(vals[1], vals[2])
	var fields []string
	for i := range pr.Parts {
		p := Part{Index: i, Count: pr.Parts}
		for n, srcs := range stages {
			for _, src := range srcs {
				fields = append(fields, PartDoneField(p, n+1, src))
			}
		}
		fields = append(fields, SegmentField(p))
	}
	got, err := s.rdb.HMGet(ctx, key, fields...).Result()
	if err != nil {
		return Progress{}, classify(fmt.Errorf("redis hmget %s: %w", key, err), key)
	}
	pr.Missing = make([][]int, len(stages))
	k := 0
	for i := range pr.Parts {
		// A part whose segment is written has finished every stage, even
		// those it skipped (stage 1 found nothing to enrich).
		var n0 int
		for _, srcs := range stages {
			n0 += len(srcs)
		}
		written := got[k+n0] != nil && pr.Parts > 1
		for n, srcs := range stages {
			missing := false
			for range srcs {
				missing = missing || got[k] == nil
				k++
			}
			if missing && !written {
				pr.Missing[n] = append(pr.Missing[n], i)
			}
		}
		if written {
			pr.Segments = append(pr.Segments, i)
		}
		k++
	}
	return pr, nil
}
