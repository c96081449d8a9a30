// Package state is the report's state in Redis: the hash
// FileDownloadRecordEntity-{ID} holding the listeners' datasets, the
// idempotent done count and the per-stage claims.
//
// Every write goes through a Lua script that refuses, and reports, a
// missing key: HSET and HINCRBY would silently recreate an expired or
// deleted hash without a TTL. Only Create makes the key, with its TTL, and
// every write refreshes the TTL so slow retries cannot expire a live report.
package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/fault"
)

// KeyBase is the fixed key name before the record ID.
const KeyBase = "FileDownloadRecordEntity-"

// Fields of the hash besides the datasets.
const (
	FieldRecordID   = "recordId"
	FieldReportType = "reportType"
	FieldParams     = "params"
	FieldCreatedAt  = "createdAt"
	FieldDoneCount  = "queryDoneCount"
	// AggregatorName is the "source" under which the aggregator records errors.
	AggregatorName = "aggregate"
)

// DoneField marks (stage, source) as counted.
func DoneField(stage int, source string) string { return fmt.Sprintf("done:%d:%s", stage, source) }

// ErrorField holds the last error of a source (or the aggregator).
func ErrorField(source string) string { return "error:" + source }

// ClaimField holds the claim of a stage: "{messageId}|{deliveryAttempt}|{expiry ms}" or "done".
func ClaimField(stage int) string { return fmt.Sprintf("claim:%d", stage) }

// ErrGone means the hash does not exist: the report expired, finished or
// was deleted. Nothing was written.
var ErrGone = errors.New("report state is gone from Redis")

// Store reads and writes report hashes.
type Store struct {
	rdb    redis.Cmdable
	prefix string
	ttl    time.Duration
}

// New returns a Store using keys prefix+KeyBase+ID with the given TTL.
func New(rdb redis.Cmdable, prefix string, ttl time.Duration) *Store {
	return &Store{rdb: rdb, prefix: prefix, ttl: ttl}
}

// Key is the hash of record id.
func (s *Store) Key(id int64) string { return s.prefix + KeyBase + strconv.FormatInt(id, 10) }

func (s *Store) ttlMS() int64 { return s.ttl.Milliseconds() }

func gone(key string) error { return fmt.Errorf("%w: %s", ErrGone, key) }

// FieldOwner marks a hash as one Create made; OwnerMark is its value.
// Create refuses a key without it: a key of another type, or a hash some
// other program keeps at our key name, is not ours to dispatch onto,
// extend or delete.
const (
	FieldOwner = "owner"
	OwnerMark  = "fanoutexport"
)

// ErrNotOurs means the key is there but not a hash Create made: a key of
// another type, or a hash without our mark. Nothing was written to it,
// and its TTL was left alone.
var ErrNotOurs = failreason.NotOurs.Sentinel()

// The script returns 1 (created), 0 (ours, kept), -1 (not a hash: the
// type follows) or -2 (a hash without our mark). A hash from before the
// mark (recordId set to this ID, reportType present) still counts as
// ours, so a deployment does not fail the reports in flight.
var createScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return {1, t}
end
if t ~= 'hash' then return {-1, t} end
local mark = redis.call('HMGET', KEYS[1], 'owner', 'recordId', 'reportType')
if mark[1] ~= 'fanoutexport' and not (mark[1] == false and mark[2] == ARGV[3] and mark[3]) then
  return {-2, t}
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {0, t}`)

// Create makes the hash for a dispatched report, or keeps the existing one
// (a re-dispatch of a PROCESSING record), refreshing its TTL either way.
// A key that is not ours is refused with a permanent error wrapping
// ErrNotOurs, untouched.
func (s *Store) Create(ctx context.Context, id int64, reportType string, params []byte) (bool, error) {
	key := s.Key(id)
	res, err := createScript.Run(ctx, s.rdb, []string{key}, s.ttlMS(),
		FieldRecordID, id, FieldOwner, OwnerMark, FieldReportType, reportType, FieldParams, string(params),
		FieldCreatedAt, time.Now().UTC().Format(time.RFC3339Nano), FieldDoneCount, 0).Slice()
	if err != nil {
		return false, classify(fmt.Errorf("redis create %s: %w", key, err), key)
	}
	n, _ := res[0].(int64)
	typ, _ := res[1].(string)
	switch n {
	case -1:
		return false, fault.Permanent(fmt.Errorf("%w: %s is a Redis %s, not a hash; refusing to dispatch onto it (nothing was run, the key was left as it is)", ErrNotOurs, key, typ))
	case -2:
		return false, fault.Permanent(fmt.Errorf("%w: %s is a hash without this service's %q mark, kept by another program; refusing to dispatch onto it (nothing was run, the key was left as it is)", ErrNotOurs, key, FieldOwner))
	}
	return n == 1, nil
}

// classify makes Redis's WRONGTYPE answer, a key of another type at a
// report's name, permanent where it is born: retrying cannot change the
// key's type, and every path (listener, aggregator, DeadLetter) then
// ends the report at once with this reason instead of waiting out its
// retries and the TTL.
func classify(err error, key string) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE") {
		return fault.Permanent(fmt.Errorf("%w: %s holds another type of value than a hash: %w", ErrNotOurs, key, err))
	}
	return err
}

var setScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)

// set writes field/value pairs into an existing hash.
func (s *Store) set(ctx context.Context, id int64, pairs ...any) error {
	key := s.Key(id)
	n, err := setScript.Run(ctx, s.rdb, []string{key}, append([]any{s.ttlMS()}, pairs...)...).Int()
	if err != nil {
		return classify(fmt.Errorf("redis hset %s: %w", key, err), key)
	}
	if n == 0 {
		return gone(key)
	}
	return nil
}

// MaxErrorBytes bounds a recorded error: the DLQ copies it into the
// record's fail_reason.
const MaxErrorBytes = 2000

// RecordError keeps who's last error in the hash for DeadLetter.
func (s *Store) RecordError(ctx context.Context, id int64, who, msg string) error {
	return s.set(ctx, id, ErrorField(who), fault.Clip(msg, MaxErrorBytes))
}

// NoteError records err as who's last error for DeadLetter, as a
// failing handler does before answering non-2xx. It uses a short context of
// its own, since the caller's deadline may be what failed, and a gone hash
// (or no record ID) is not an error: there is nothing left to annotate.
func (s *Store) NoteError(ctx context.Context, id int64, who string, err error) error {
	if id <= 0 || err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rerr := s.RecordError(ctx, id, who, err.Error()); rerr != nil && !errors.Is(rerr, ErrGone) {
		return rerr
	}
	return nil
}

var doneScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0} end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[8]) == 0 then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'queryDoneCount') or '0'), tonumber(redis.call('HGET', KEYS[1], ARGV[2])) or 0}
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
redis.call('HDEL', KEYS[1], ARGV[7])
return {1, redis.call('HINCRBY', KEYS[1], 'queryDoneCount', 1), tonumber(ARGV[8])}`)

// Done is what MarkDone did.
type Done struct {
	Counted bool  // this call counted the source
	Count   int64 // queryDoneCount after the call
	Attempt int64 // the attempt whose dataset counts (this one, or the earlier winner)
}

// MarkDone records that source finished stage with attempt's dataset
// (name is the source's dataset, without the attempt), and counts it in
// queryDoneCount, once: the marker naming the attempt and the increment
// are one atomic step, so a redelivered or duplicated message never counts
// twice, and readers read only the attempt the marker names. A losing
// attempt's caller drops its own dataset (DropAttempt).
func (s *Store) MarkDone(ctx context.Context, id int64, stage int, source, name string, attempt, chunks, rows int64) (Done, error) {
	key := s.Key(id)
	an := AttemptName(name, attempt)
	res, err := doneScript.Run(ctx, s.rdb, []string{key}, s.ttlMS(), DoneField(stage, source),
		dataset.ChunksField(an), chunks, dataset.RowsField(an), rows, ErrorField(source), attempt).Int64Slice()
	if err != nil {
		return Done{}, classify(fmt.Errorf("redis mark done %s %s: %w", key, source, err), key)
	}
	if res[0] < 0 {
		return Done{}, gone(key)
	}
	return Done{Counted: res[0] == 1, Count: res[1], Attempt: res[2]}, nil
}

// IsDone reports whether source already finished stage (ErrGone if the hash is gone).
func (s *Store) IsDone(ctx context.Context, id int64, stage int, source string) (bool, error) {
	key := s.Key(id)
	vals, err := s.rdb.HMGet(ctx, key, FieldReportType, DoneField(stage, source)).Result()
	if err != nil {
		return false, classify(fmt.Errorf("redis hmget %s: %w", key, err), key)
	}
	if vals[0] == nil {
		return false, gone(key)
	}
	return vals[1] != nil, nil
}

// FieldAttempts counts the attempts allocated for the report.
const FieldAttempts = "attempts"

// AttemptName is the dataset name of one attempt: "{dataset}@{attempt}".
// Two attempts of one listener (duplicate deliveries running at once)
// never write the same field, so a report's CSV is always one consistent
// fetch per source.
func AttemptName(name string, attempt int64) string {
	return name + "@" + strconv.FormatInt(attempt, 10)
}

// InputField holds the attempt of the aggregator's input dataset for stage.
func InputField(stage int) string { return fmt.Sprintf("input:%d", stage) }

var attemptScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)`)

// NewAttempt allocates an attempt ID for one handler call. Pub/Sub's
// deliveryAttempt and messageId repeat across duplicate deliveries, so
// they cannot tell two concurrent runs apart; this can.
func (s *Store) NewAttempt(ctx context.Context, id int64) (int64, error) {
	key := s.Key(id)
	n, err := attemptScript.Run(ctx, s.rdb, []string{key}, s.ttlMS()).Int64()
	if err != nil {
		return 0, classify(fmt.Errorf("redis new attempt %s: %w", key, err), key)
	}
	if n < 0 {
		return 0, gone(key)
	}
	return n, nil
}

// ErrSuperseded means another attempt's dataset was chosen while this one
// was being written: this attempt's writes are refused.
var ErrSuperseded = errors.New("another attempt's dataset was chosen")

var guardedSetScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if owner and owner ~= ARGV[3] then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)

// setGuarded writes pairs unless field guard names an attempt other than attempt.
func (s *Store) setGuarded(ctx context.Context, id int64, guard string, attempt int64, pairs ...any) error {
	key := s.Key(id)
	n, err := guardedSetScript.Run(ctx, s.rdb, []string{key}, append([]any{s.ttlMS(), guard, attempt}, pairs...)...).Int()
	if err != nil {
		return classify(fmt.Errorf("redis hset %s: %w", key, err), key)
	}
	switch n {
	case 0:
		return gone(key)
	case -1:
		return fmt.Errorf("%w: %s names another attempt than %d", ErrSuperseded, guard, attempt)
	}
	return nil
}

// DropBatch bounds the chunks one HDEL of DropAttempt deletes. Redis is
// shared and runs one command at a time: a chunk holds up to 255 KiB, so a
// batch frees at most 8 MiB and never holds the server for long, however
// large the losing dataset (one script deleting hundreds of MB held every
// other client for its whole run).
const DropBatch = 32

// DropAttempt deletes a losing attempt's dataset, DropBatch chunks per
// command. Its chunks are numbered from 0, so it stops after the first
// batch that was not full. HDEL never creates the hash.
func (s *Store) DropAttempt(ctx context.Context, id int64, name string, attempt int64) error {
	key := s.Key(id)
	an := AttemptName(name, attempt)
	fields := make([]string, 0, DropBatch+2)
	for i := int64(0); ; i += DropBatch {
		fields = fields[:0]
		for j := i; j < i+DropBatch; j++ {
			fields = append(fields, dataset.ChunkField(an, j))
		}
		n, err := s.rdb.HDel(ctx, key, fields...).Result()
		if err != nil {
			return classify(fmt.Errorf("redis hdel %s %s#%d…: %w", key, an, i, err), key)
		}
		if n < DropBatch {
			break
		}
	}
	if err := s.rdb.HDel(ctx, key, dataset.ChunksField(an), dataset.RowsField(an)).Err(); err != nil {
		return classify(fmt.Errorf("redis hdel %s %s: %w", key, dataset.ChunksField(an), err), key)
	}
	return nil
}

var commitInputScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], ARGV[2]))`)

// CommitInput makes attempt's input dataset the one stage reads, unless
// another attempt (an aggregator that took the stage over) committed
// first; it returns the attempt that counts.
func (s *Store) CommitInput(ctx context.Context, id int64, stage int, attempt int64) (int64, error) {
	key := s.Key(id)
	n, err := commitInputScript.Run(ctx, s.rdb, []string{key}, s.ttlMS(), InputField(stage), attempt).Int64()
	if err != nil {
		return 0, classify(fmt.Errorf("redis commit input %s stage %d: %w", key, stage, err), key)
	}
	if n < 0 {
		return 0, gone(key)
	}
	return n, nil
}

// InputAttempt returns the attempt of stage's committed input dataset.
func (s *Store) InputAttempt(ctx context.Context, id int64, stage int) (int64, error) {
	key := s.Key(id)
	vals, err := s.rdb.HMGet(ctx, key, FieldReportType, InputField(stage)).Result()
	if err != nil {
		return 0, classify(fmt.Errorf("redis hmget %s: %w", key, err), key)
	}
	if vals[0] == nil {
		return 0, gone(key)
	}
	v, _ := vals[1].(string)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s has no committed input for stage %d", dataset.ErrMissing, key, stage)
	}
	return n, nil
}

// ClaimResult is the outcome of Claim.
type ClaimResult int

// Claim outcomes.
const (
	Claimed   ClaimResult = iota // this message owns the stage now
	Held                         // another message owns it and its claim has not expired
	Completed                    // the stage's next step already happened
)

var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local v = redis.call('HGET', KEYS[1], ARGV[2])
if v == 'done' then return 2 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owner, attempt, expiry
if v then owner, attempt, expiry = string.match(v, '^(.*)|(%d+)|(%d+)$') end
if owner then
  local redelivery = owner == ARGV[3] and tonumber(attempt) < tonumber(ARGV[5])
  if not redelivery and tonumber(expiry) > now then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. '|' .. ARGV[5] .. '|' .. (now + tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)

// Claim lets one message act on a complete stage; the claim holds
// "{messageId}|{deliveryAttempt}|{expiry ms}". A redelivery of the owning
// message (a later delivery attempt: its aggregator crashed or timed out),
// or any message after the claim expired, takes it over, so a crashed
// aggregator never strands a report. A concurrent copy of the same
// delivery (same attempt, as Pub/Sub's at-least-once may send) does not:
// it would fan out the next stage, or upload, a second time. Time is
// Redis's own. A claim in any other format (one an older version wrote,
// such as "{messageId}|{expiry}", or garbage) is read as expired and taken
// over: during a rolling deploy it must not fail the script, which would
// have the aggregator retry until the message is dead-lettered.
func (s *Store) Claim(ctx context.Context, id int64, stage int, msgID string, deliveryAttempt int, hold time.Duration) (ClaimResult, error) {
	key := s.Key(id)
	n, err := claimScript.Run(ctx, s.rdb, []string{key}, s.ttlMS(), ClaimField(stage), msgID, hold.Milliseconds(), max(deliveryAttempt, 1)).Int()
	if err != nil {
		return 0, classify(fmt.Errorf("redis claim %s stage %d: %w", key, stage, err), key)
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

// CompleteClaim marks stage's next step as done; later messages for the
// stage are acknowledged without acting.
func (s *Store) CompleteClaim(ctx context.Context, id int64, stage int) error {
	return s.set(ctx, id, ClaimField(stage), "done")
}

var deleteScript = redis.NewScript(`
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
local mark = redis.call('HMGET', KEYS[1], 'owner', 'recordId')
if mark[1] ~= 'fanoutexport' and not (mark[1] == false and mark[2] == ARGV[1]) then return 0 end
return redis.call('UNLINK', KEYS[1])`)

// Delete removes the hash once the record is final. A key that is not
// ours (see Create) is left alone: a report refused for it must not
// destroy another program's data. It uses UNLINK: a finished hash can
// hold hundreds of MB, and DEL would free them while every other client
// of the shared Redis waits; UNLINK frees them in the background.
func (s *Store) Delete(ctx context.Context, id int64) error {
	if err := deleteScript.Run(ctx, s.rdb, []string{s.Key(id)}, id).Err(); err != nil {
		return fmt.Errorf("redis del %s: %w", s.Key(id), err)
	}
	return nil
}

// Snapshot is what the hash says about a report, without any dataset.
type Snapshot struct {
	ReportType string
	Params     []byte
	DoneCount  int64
	Claims     map[int]string           // stage -> "done" or "{msg}|{attempt}|{expiry}"
	Done       map[int]map[string]bool  // stage -> source -> done
	Attempts   map[int]map[string]int64 // stage -> source -> the attempt whose dataset counts
	Errors     map[string]string        // source or "aggregate" -> last error
	TTL        time.Duration
	Parts      int // the report's number of parts (1 for a hash made before parts)
}

// Read returns the snapshot of record id, for the given stages' sources
// (stages[n-1] lists stage n's source names). It reads named fields only:
// never the chunks. This is the one place progress is read from.
func (s *Store) Read(ctx context.Context, id int64, stages [][]string) (Snapshot, error) {
	return s.ReadPart(ctx, id, Whole, stages)
}

// ReadPart is Read of one part: its done markers, claims, attempts and
// count (DoneCount is the part's); errors are per source, any part's last.
func (s *Store) ReadPart(ctx context.Context, id int64, p Part, stages [][]string) (Snapshot, error) {
	key := s.Key(id)
	fields := []string{FieldReportType, FieldParams, PartCountField(p), ErrorField(AggregatorName), FieldParts}
	for n, srcs := range stages {
		fields = append(fields, PartClaimField(p, n+1))
		for _, src := range srcs {
			fields = append(fields, PartDoneField(p, n+1, src), ErrorField(src))
		}
	}
	pipe := s.rdb.Pipeline()
	hm := pipe.HMGet(ctx, key, fields...)
	ttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return Snapshot{}, classify(fmt.Errorf("redis hmget %s: %w", key, err), key)
	}
	vals := hm.Val()
	str := func(i int) (string, bool) {
		v, ok := vals[i].(string)
		return v, ok
	}
	rt, ok := str(0)
	if !ok {
		return Snapshot{}, gone(key)
	}
	snap := Snapshot{ReportType: rt, Claims: map[int]string{}, Done: map[int]map[string]bool{}, Attempts: map[int]map[string]int64{}, Errors: map[string]string{}, TTL: ttl.Val()}
	if p, ok := str(1); ok {
		snap.Params = []byte(p)
	}
	if c, ok := str(2); ok {
		snap.DoneCount, _ = strconv.ParseInt(c, 10, 64)
	}
	if e, ok := str(3); ok {
		snap.Errors[AggregatorName] = e
	}
	snap.Parts, _ = partsOf(vals[4], nil)
	i := 5
	for n, srcs := range stages {
		if c, ok := str(i); ok {
			snap.Claims[n+1] = c
		}
		i++
		snap.Done[n+1] = map[string]bool{}
		snap.Attempts[n+1] = map[string]int64{}
		for _, src := range srcs {
			var a string
			a, snap.Done[n+1][src] = str(i)
			snap.Attempts[n+1][src], _ = strconv.ParseInt(a, 10, 64)
			if e, ok := str(i + 1); ok {
				snap.Errors[src] = e
			}
			i += 2
		}
	}
	return snap, nil
}

// Datasets returns a store over record id's hash that reads and writes
// dataset names as given (tests, and data with no attempts).
func (s *Store) Datasets(id int64) dataset.WriteStore { return &datasets{s: s, id: id} }

// Reader returns a store that reads each dataset named in attempts (a
// dataset name without its attempt, to the attempt that counts) from that
// attempt's fields, and any other name as given.
func (s *Store) Reader(id int64, attempts map[string]int64) dataset.Store {
	return &datasets{s: s, id: id, attempts: attempts}
}

// Writer returns a store for one attempt: it writes every dataset under
// the attempt's name, and refuses (ErrSuperseded) once the hash field
// guard names another attempt; it reads as Reader(id, reads) does.
func (s *Store) Writer(id int64, guard string, attempt int64, reads map[string]int64) dataset.WriteStore {
	return &datasets{s: s, id: id, guard: guard, attempt: attempt, attempts: reads}
}

type datasets struct {
	s        *Store
	id       int64
	part     Part             // names every dataset with the part's suffix
	attempts map[string]int64 // reading: dataset -> attempt
	guard    string           // writing: the field naming the chosen attempt
	attempt  int64            // writing: this attempt
}

func (d *datasets) writeName(name string) string {
	name = d.part.Dataset(name)
	if d.guard != "" {
		return AttemptName(name, d.attempt)
	}
	return name
}

func (d *datasets) readName(name string) string {
	if a, ok := d.attempts[name]; ok {
		return AttemptName(d.part.Dataset(name), a)
	}
	return d.part.Dataset(name)
}

func (d *datasets) put(ctx context.Context, pairs ...any) error {
	if d.guard != "" {
		return d.s.setGuarded(ctx, d.id, d.guard, d.attempt, pairs...)
	}
	return d.s.set(ctx, d.id, pairs...)
}

func (d *datasets) PutChunk(ctx context.Context, name string, i int64, data []byte) error {
	return d.put(ctx, dataset.ChunkField(d.writeName(name), i), data)
}

func (d *datasets) Finish(ctx context.Context, name string, chunks, rows int64) error {
	n := d.writeName(name)
	return d.put(ctx, dataset.ChunksField(n), chunks, dataset.RowsField(n), rows)
}

func (d *datasets) GetChunk(ctx context.Context, name string, i int64) ([]byte, error) {
	name = d.readName(name)
	key := d.s.Key(d.id)
	b, err := d.s.rdb.HGet(ctx, key, dataset.ChunkField(name, i)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, d.missing(ctx, dataset.ChunkField(name, i))
	}
	if err != nil {
		return nil, classify(fmt.Errorf("redis hget %s %s: %w", key, dataset.ChunkField(name, i), err), key)
	}
	return b, nil
}

func (d *datasets) Meta(ctx context.Context, name string) (int64, int64, error) {
	name = d.readName(name)
	key := d.s.Key(d.id)
	vals, err := d.s.rdb.HMGet(ctx, key, dataset.ChunksField(name), dataset.RowsField(name)).Result()
	if err != nil {
		return 0, 0, classify(fmt.Errorf("redis hmget %s %s: %w", key, name, err), key)
	}
	c, ok1 := vals[0].(string)
	r, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return 0, 0, d.missing(ctx, dataset.ChunksField(name))
	}
	chunks, err1 := strconv.ParseInt(c, 10, 64)
	rows, err2 := strconv.ParseInt(r, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("redis %s %s: bad counts %q/%q", key, name, c, r)
	}
	return chunks, rows, nil
}

// missing tells a gone hash from a missing field of a live one.
func (d *datasets) missing(ctx context.Context, field string) error {
	key := d.s.Key(d.id)
	n, err := d.s.rdb.Exists(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("redis exists %s: %w", key, err)
	}
	if n == 0 {
		return gone(key)
	}
	return fmt.Errorf("%w: %s field %s", dataset.ErrMissing, key, field)
}

// TTL is the hash's lifetime from its last write.
func (s *Store) TTL() time.Duration { return s.ttl }

// Refresh extends the hash's TTL without writing to it, for a handler
// still working on the report (a long query writes nothing for minutes).
// PEXPIRE never creates a key, so a gone hash stays gone; it reports
// whether the hash was there.
func (s *Store) Refresh(ctx context.Context, id int64) (bool, error) {
	ok, err := s.rdb.PExpire(ctx, s.Key(id), s.ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis pexpire %s: %w", s.Key(id), err)
	}
	return ok, nil
}
