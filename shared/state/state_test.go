package state_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
)

const (
	ttl      = 10 * time.Minute
	id       = int64(1111)
	srcTags  = "plt_user.vs_user_tag_relation"
	srcWd    = "plt_fund.vs_withdraw"
	srcPay   = "plt_fund.vs_payment"
	dsWd     = "plt_fund.vs_withdraw.user_id"
	minute   = time.Minute
	holdLong = time.Minute
)

func redisAddr() string {
	if a := os.Getenv("REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// commandLog records the arguments of every command a client sends.
type commandLog struct {
	mu   sync.Mutex
	args [][]any
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }
func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		return next(ctx, cmd)
	}
}
func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			l.add(c)
		}
		return next(ctx, cmds)
	}
}
func (l *commandLog) add(cmd redis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.args = append(l.args, cmd.Args())
}
func (l *commandLog) take() [][]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.args
	l.args = nil
	return a
}

type env struct {
	rdb    *redis.Client
	st     *state.Store
	prefix string
	log    *commandLog
}

// setup connects to the real Redis (skipped under -short), failing if it is not
// there, and gives the test its own key prefix, deleted afterwards.
func setup(t *testing.T) env {
	t.Helper()
	testdb.NeedRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		t.Fatalf("Redis at %s: %v", redisAddr(), err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "aggstate-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		var keys []string
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("scan %s*: %v", prefix, err)
		}
		if len(keys) > 0 {
			if err := rdb.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		rdb.Close()
	})
	log := &commandLog{}
	rdb.AddHook(log)
	return env{rdb: rdb, st: state.New(rdb, prefix, ttl), prefix: prefix, log: log}
}

func (e env) create(t *testing.T, id int64) {
	t.Helper()
	created, err := e.st.Create(context.Background(), id, "withdraw_by_tag_with_payments", []byte(`{"tagIds":[3]}`))
	if err != nil || !created {
		t.Fatalf("Create(%d) = %v, %v; want true, nil", id, created, err)
	}
}

func (e env) exists(t *testing.T, id int64) bool {
	t.Helper()
	n, err := e.rdb.Exists(context.Background(), e.st.Key(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func (e env) hash(t *testing.T, id int64) map[string]string {
	t.Helper()
	h, err := e.rdb.HGetAll(context.Background(), e.st.Key(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestKey(t *testing.T) {
	t.Parallel()
	st := state.New(nil, "p:", ttl)
	if got := st.Key(1111); got != "p:FileDownloadRecordEntity-1111" {
		t.Errorf("Key(1111) = %q", got)
	}
	if got := state.New(nil, "", ttl).Key(42); got != "FileDownloadRecordEntity-42" {
		t.Errorf("Key(42) without prefix = %q", got)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	h := e.hash(t, id)
	created, err := time.Parse(time.RFC3339Nano, h[state.FieldCreatedAt])
	if err != nil {
		t.Errorf("createdAt %q: %v", h[state.FieldCreatedAt], err)
	}
	if created.Location() != time.UTC {
		t.Errorf("createdAt %q is not UTC", h[state.FieldCreatedAt])
	}
	want := map[string]string{
		"recordId": "1111", "reportType": "withdraw_by_tag_with_payments",
		"params": `{"tagIds":[3]}`, "queryDoneCount": "0", "createdAt": h[state.FieldCreatedAt],
		"owner": "fanoutexport",
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("hash after Create (-want +got):\n%s", diff)
	}
	pttl := e.rdb.PTTL(ctx, e.st.Key(id)).Val()
	if pttl <= ttl-minute || pttl > ttl {
		t.Errorf("PTTL after Create = %v, want about %v", pttl, ttl)
	}

	// A re-dispatch keeps the hash as it is and refreshes the TTL.
	if err := e.st.RecordError(ctx, id, srcWd, "boom"); err != nil {
		t.Fatal(err)
	}
	want[state.ErrorField(srcWd)] = "boom"
	e.rdb.PExpire(ctx, e.st.Key(id), 5*time.Second)
	again, err := e.st.Create(ctx, id, "withdraw_by_tag", []byte(`{"tagIds":[9]}`))
	if err != nil || again {
		t.Fatalf("second Create = %v, %v; want false, nil", again, err)
	}
	if diff := cmp.Diff(want, e.hash(t, id)); diff != "" {
		t.Errorf("hash after a second Create (-want +got):\n%s", diff)
	}
	if pttl := e.rdb.PTTL(ctx, e.st.Key(id)).Val(); pttl <= ttl-minute {
		t.Errorf("PTTL after a second Create = %v, want it refreshed to about %v", pttl, ttl)
	}
}

// writes are every operation that writes into the hash.
var writes = []struct {
	name string
	do   func(ctx context.Context, st *state.Store, id int64) error
}{
	{"RecordError", func(ctx context.Context, st *state.Store, id int64) error {
		return st.RecordError(ctx, id, srcWd, "boom")
	}},
	{"PutChunk", func(ctx context.Context, st *state.Store, id int64) error {
		return st.Datasets(id).PutChunk(ctx, dsWd, 0, []byte("1,101\n"))
	}},
	{"Finish", func(ctx context.Context, st *state.Store, id int64) error {
		return st.Datasets(id).Finish(ctx, dsWd, 1, 1)
	}},
	{"MarkDone", func(ctx context.Context, st *state.Store, id int64) error {
		_, err := st.MarkDone(ctx, id, 1, srcWd, dsWd, 1, 1, 1)
		return err
	}},
	{"MarkDone again", func(ctx context.Context, st *state.Store, id int64) error {
		if _, err := st.MarkDone(ctx, id, 1, srcWd, dsWd, 1, 1, 1); err != nil {
			return err
		}
		_, err := st.MarkDone(ctx, id, 1, srcWd, dsWd, 1, 1, 1)
		return err
	}},
	{"Claim", func(ctx context.Context, st *state.Store, id int64) error {
		res, err := st.Claim(ctx, id, 1, "m1", 1, holdLong)
		if err == nil && res != state.Claimed {
			return fmt.Errorf("Claim = %v, want Claimed", res)
		}
		return err
	}},
	{"CompleteClaim", func(ctx context.Context, st *state.Store, id int64) error {
		return st.CompleteClaim(ctx, id, 1)
	}},
}

func TestWritesOnMissingKeyFail(t *testing.T) {
	t.Parallel()
	for _, w := range writes {
		for _, deleted := range []bool{false, true} {
			name := w.name + " never created"
			if deleted {
				name = w.name + " after Delete"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := setup(t)
				ctx := context.Background()
				if deleted {
					e.create(t, id)
					if err := e.st.Delete(ctx, id); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.do(ctx, e.st, id); !errors.Is(err, state.ErrGone) {
					t.Errorf("%s on a missing hash = %v, want ErrGone", w.name, err)
				}
				if e.exists(t, id) {
					t.Errorf("%s recreated the hash: %v", w.name, e.hash(t, id))
				}
			})
		}
	}
}

func TestReadsOnMissingKey(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if _, err := e.st.Read(ctx, id, [][]string{{srcWd}}); !errors.Is(err, state.ErrGone) {
		t.Errorf("Read = %v, want ErrGone", err)
	}
	if _, err := e.st.IsDone(ctx, id, 1, srcWd); !errors.Is(err, state.ErrGone) {
		t.Errorf("IsDone = %v, want ErrGone", err)
	}
	ds := e.st.Datasets(id)
	if _, _, err := ds.Meta(ctx, dsWd); !errors.Is(err, state.ErrGone) {
		t.Errorf("Meta = %v, want ErrGone", err)
	}
	if _, err := ds.GetChunk(ctx, dsWd, 0); !errors.Is(err, state.ErrGone) {
		t.Errorf("GetChunk = %v, want ErrGone", err)
	}
	if err := e.st.Delete(ctx, id); err != nil {
		t.Errorf("Delete of a missing hash = %v, want nil", err)
	}
	if e.exists(t, id) {
		t.Errorf("a read created the hash")
	}
}

func TestWritesRefreshTTL(t *testing.T) {
	t.Parallel()
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ctx := context.Background()
			e.create(t, id)
			if err := e.rdb.PExpire(ctx, e.st.Key(id), 5*time.Second).Err(); err != nil {
				t.Fatal(err)
			}
			if err := w.do(ctx, e.st, id); err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			if pttl := e.rdb.PTTL(ctx, e.st.Key(id)).Val(); pttl <= ttl-minute || pttl > ttl {
				t.Errorf("PTTL after %s = %v, want it back near %v", w.name, pttl, ttl)
			}
		})
	}
}

func TestMarkDone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	if err := e.st.RecordError(ctx, id, srcWd, "first attempt failed"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RecordError(ctx, id, srcTags, "still failing"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		Counted bool
		Count   int64
	}
	steps := []struct {
		stage         int
		source        string
		chunks, rows  int64
		want          result
		wantDoneAfter bool
	}{
		{1, srcWd, 3, 1000, result{true, 1}, true},
		{1, srcWd, 3, 1000, result{false, 1}, true}, // redelivery
		{1, srcWd, 9, 9999, result{false, 1}, true}, // redelivery with other counts changes nothing
		{1, srcTags, 1, 10, result{true, 2}, true},
		{2, srcPay, 1, 5, result{true, 3}, true},
		{2, srcWd, 3, 1000, result{true, 4}, true}, // (stage, source) is the unit, not the source
		{2, srcPay, 1, 5, result{false, 4}, true},
	}
	for i, s := range steps {
		d, err := e.st.MarkDone(ctx, id, s.stage, s.source, s.source+".user_id", int64(i+1), s.chunks, s.rows)
		if err != nil {
			t.Fatalf("step %d: MarkDone: %v", i, err)
		}
		if diff := cmp.Diff(s.want, result{d.Counted, d.Count}); diff != "" {
			t.Errorf("step %d: MarkDone(%d, %s) (-want +got):\n%s", i, s.stage, s.source, diff)
		}
		done, err := e.st.IsDone(ctx, id, s.stage, s.source)
		if err != nil || !done {
			t.Errorf("step %d: IsDone = %v, %v; want true", i, done, err)
		}
	}
	h := e.hash(t, id)
	for field, want := range map[string]string{
		"queryDoneCount": "4",
		dataset.ChunksField(state.AttemptName(dsWd, 1)): "3", dataset.RowsField(state.AttemptName(dsWd, 1)): "1000",
		// each marker names the attempt that counted (the step's index + 1)
		"done:1:" + srcWd: "1", "done:1:" + srcTags: "4", "done:2:" + srcPay: "5",
	} {
		if h[field] != want {
			t.Errorf("field %s = %q, want %q", field, h[field], want)
		}
	}
	for _, src := range []string{srcWd, srcTags} {
		if v, ok := h[state.ErrorField(src)]; ok {
			t.Errorf("%s still has error %q after MarkDone", state.ErrorField(src), v)
		}
	}
	if done, err := e.st.IsDone(ctx, id, 1, srcPay); err != nil || done {
		t.Errorf("IsDone(stage 1, %s) = %v, %v; want false (done only in stage 2)", srcPay, done, err)
	}
	chunks, rows, err := e.st.Reader(id, map[string]int64{dsWd: 1}).Meta(ctx, dsWd)
	if err != nil || chunks != 3 || rows != 1000 {
		t.Errorf("Meta(%s) = %d, %d, %v; want 3, 1000", dsWd, chunks, rows, err)
	}
}

func TestMarkDoneConcurrent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	sources := []string{srcTags, srcWd, srcPay, "plt_x.vs_y"}
	const goroutines = 20
	type result struct {
		source  string
		counted bool
		count   int64
		err     error
	}
	results := make(chan result, 2*goroutines)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			src := sources[g%len(sources)]
			for range 2 { // and each one delivered twice
				d, err := e.st.MarkDone(ctx, id, 1, src, src+".user_id", int64(g+1), 1, 1)
				results <- result{src, d.Counted, d.Count, err}
			}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	counted := map[string]int{}
	var maxCount int64
	for r := range results {
		if r.err != nil {
			t.Fatalf("MarkDone(%s): %v", r.source, r.err)
		}
		if r.counted {
			counted[r.source]++
		}
		maxCount = max(maxCount, r.count)
	}
	want := map[string]int{}
	for _, s := range sources {
		want[s] = 1
	}
	if diff := cmp.Diff(want, counted); diff != "" {
		t.Errorf("calls that counted, per source (-want +got):\n%s", diff)
	}
	if got := e.hash(t, id)["queryDoneCount"]; got != fmt.Sprint(len(sources)) {
		t.Errorf("queryDoneCount = %s, want %d", got, len(sources))
	}
	if maxCount != int64(len(sources)) {
		t.Errorf("highest count returned = %d, want %d", maxCount, len(sources))
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	steps := []struct {
		name     string
		stage    int
		msg      string
		attempt  int // Pub/Sub's deliveryAttempt; 0 reads as 1
		hold     time.Duration
		sleep    time.Duration // before the step, to let a claim expire
		complete bool          // CompleteClaim instead of Claim
		want     state.ClaimResult
	}{
		{name: "first message claims", stage: 1, msg: "m1", hold: holdLong, want: state.Claimed},
		{name: "another message while held", stage: 1, msg: "m2", hold: holdLong, want: state.Held},
		{name: "a concurrent copy of the owner's delivery is held off", stage: 1, msg: "m1", attempt: 1, hold: holdLong, want: state.Held},
		{name: "redelivery of the owner takes over", stage: 1, msg: "m1", attempt: 2, hold: 50 * time.Millisecond, want: state.Claimed},
		{name: "another message after expiry takes over", stage: 1, msg: "m2", hold: holdLong, sleep: 100 * time.Millisecond, want: state.Claimed},
		{name: "the former owner is now held off", stage: 1, msg: "m1", hold: holdLong, want: state.Held},
		{name: "stages are claimed separately", stage: 2, msg: "m1", hold: holdLong, want: state.Claimed},
		{name: "complete stage 1", stage: 1, complete: true},
		{name: "owner after completion", stage: 1, msg: "m2", hold: holdLong, want: state.Completed},
		{name: "anyone after completion", stage: 1, msg: "m9", hold: holdLong, want: state.Completed},
		{name: "stage 2 still held", stage: 2, msg: "m9", hold: holdLong, want: state.Held},
	}
	for _, s := range steps {
		time.Sleep(s.sleep)
		if s.complete {
			if err := e.st.CompleteClaim(ctx, id, s.stage); err != nil {
				t.Fatalf("%s: CompleteClaim: %v", s.name, err)
			}
			continue
		}
		got, err := e.st.Claim(ctx, id, s.stage, s.msg, s.attempt, s.hold)
		if err != nil {
			t.Fatalf("%s: Claim: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: Claim(stage %d, %s) = %v, want %v", s.name, s.stage, s.msg, got, s.want)
		}
	}
	h := e.hash(t, id)
	if h[state.ClaimField(1)] != "done" {
		t.Errorf("%s = %q, want done", state.ClaimField(1), h[state.ClaimField(1)])
	}
	if !regexp.MustCompile(`^m1\|1\|\d+$`).MatchString(h[state.ClaimField(2)]) {
		t.Errorf("%s = %q, want m1|1|{expiry}", state.ClaimField(2), h[state.ClaimField(2)])
	}
}

// A claim written in another format than "{messageId}|{deliveryAttempt}|{expiry}"
// (an older version's "{messageId}|{expiry}", or garbage) reads as expired:
// a new message takes the stage over instead of the script failing on it
// (before the fix, tonumber(nil) failed every Claim, and the aggregator
// retried until the message was dead-lettered). A readable claim that has
// not expired still holds, so the table shows the format is what decides.
func TestClaimUnreadableIsExpired(t *testing.T) {
	t.Parallel()
	future := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	tests := []struct {
		name  string
		claim string
		want  state.ClaimResult
	}{
		{name: "older version: messageId|expiry, expiry in the future", claim: "m-old|" + future, want: state.Claimed},
		{name: "older version: messageId only", claim: "m-old", want: state.Claimed},
		{name: "empty", claim: "", want: state.Claimed},
		{name: "garbage", claim: "\x00\xff not a claim", want: state.Claimed},
		{name: "non-numeric attempt and expiry", claim: "m-old|x|y", want: state.Claimed},
		{name: "missing expiry", claim: "m-old|2|", want: state.Claimed},
		{name: "bars only", claim: "|||", want: state.Claimed},
		{name: "negative expiry", claim: "m-old|1|-" + future, want: state.Claimed},
		{name: "current format, not expired, holds", claim: "m-old|1|" + future, want: state.Held},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ctx := context.Background()
			e.create(t, id)
			if err := e.rdb.HSet(ctx, e.st.Key(id), state.ClaimField(1), tc.claim).Err(); err != nil {
				t.Fatal(err)
			}
			got, err := e.st.Claim(ctx, id, 1, "m-new", 1, holdLong)
			if err != nil {
				t.Fatalf("Claim over %q: %v", tc.claim, err)
			}
			if got != tc.want {
				t.Errorf("Claim over %q = %v, want %v", tc.claim, got, tc.want)
			}
			wantField := regexp.MustCompile(`^m-new\|1\|\d+$`)
			if tc.want == state.Held {
				wantField = regexp.MustCompile("^" + regexp.QuoteMeta(tc.claim) + "$")
			}
			if f := e.hash(t, id)[state.ClaimField(1)]; !wantField.MatchString(f) {
				t.Errorf("claim field after Claim = %q, want it to match %s", f, wantField)
			}
		})
	}
}

func TestClaimConcurrent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	const goroutines = 20
	results := make([]state.ClaimResult, goroutines)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			results[g], errs[g] = e.st.Claim(ctx, id, 1, fmt.Sprintf("msg-%d", g), 1, holdLong)
		})
	}
	close(start)
	wg.Wait()
	got := map[state.ClaimResult]int{}
	for g := range goroutines {
		if errs[g] != nil {
			t.Fatalf("Claim %d: %v", g, errs[g])
		}
		got[results[g]]++
	}
	want := map[state.ClaimResult]int{state.Claimed: 1, state.Held: goroutines - 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claim outcomes (-want +got):\n%s", diff)
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	// A big chunk with a marker no snapshot may contain.
	const marker = "CHUNK-MARKER-7f3a"
	big := []byte(marker + strings.Repeat("x", 1<<20) + marker)
	ds := e.st.Datasets(id)
	if err := ds.PutChunk(ctx, dsWd, 0, big); err != nil {
		t.Fatal(err)
	}
	if err := ds.Finish(ctx, dsWd, 1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.MarkDone(ctx, id, 1, srcWd, dsWd, 1, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RecordError(ctx, id, srcTags, "tags: connection refused"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RecordError(ctx, id, state.AggregatorName, "upload failed"); err != nil {
		t.Fatal(err)
	}
	if res, err := e.st.Claim(ctx, id, 1, "m1", 1, holdLong); err != nil || res != state.Claimed {
		t.Fatalf("Claim = %v, %v", res, err)
	}

	e.log.take()
	stages := [][]string{{srcTags, srcWd}, {srcPay}}
	snap, err := e.st.Read(ctx, id, stages)
	if err != nil {
		t.Fatal(err)
	}
	want := state.Snapshot{
		ReportType: "withdraw_by_tag_with_payments",
		Params:     []byte(`{"tagIds":[3]}`),
		DoneCount:  1,
		Claims:     map[int]string{1: snap.Claims[1]},
		Done:       map[int]map[string]bool{1: {srcTags: false, srcWd: true}, 2: {srcPay: false}},
		Attempts:   map[int]map[string]int64{1: {srcTags: 0, srcWd: 1}, 2: {srcPay: 0}},
		Errors:     map[string]string{srcTags: "tags: connection refused", state.AggregatorName: "upload failed"},
		Parts:      1,
	}
	if diff := cmp.Diff(want, snap, cmpopts.IgnoreFields(state.Snapshot{}, "TTL")); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	if !regexp.MustCompile(`^m1\|1\|\d+$`).MatchString(snap.Claims[1]) {
		t.Errorf("claim of stage 1 = %q, want m1|1|{expiry}", snap.Claims[1])
	}
	if snap.TTL <= ttl-minute || snap.TTL > ttl {
		t.Errorf("TTL = %v, want about %v", snap.TTL, ttl)
	}
	if s := fmt.Sprintf("%+v", snap); strings.Contains(s, marker) || len(s) > 4096 {
		t.Errorf("the snapshot holds chunk data (%d bytes)", len(s))
	}
	for _, args := range e.log.take() {
		for _, a := range args {
			if s, ok := a.(string); ok && strings.Contains(s, "#") {
				t.Errorf("Read sent %v, naming a dataset field", args)
			}
		}
	}
}

func TestDatasetsRoundTrip(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	ds := e.st.Datasets(id)
	rows := [][]string{{"1", "a,b"}, {"2", "日本語"}, {"3", "line\nbreak"}, {"4", ""}}
	w := dataset.NewWriter(ctx, ds, dsWd, 1)
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	chunks, n, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Finish(ctx, dsWd, chunks, n); err != nil {
		t.Fatal(err)
	}
	h := e.hash(t, id)
	for i := range chunks {
		if _, ok := h[dataset.ChunkField(dsWd, i)]; !ok {
			t.Errorf("hash has no field %s", dataset.ChunkField(dsWd, i))
		}
	}
	r, err := dataset.Open(ctx, ds, dsWd, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, append([]string(nil), row...))
	}
	if diff := cmp.Diff(rows, got); diff != "" {
		t.Errorf("rows through Redis (-want +got):\n%s", diff)
	}
	// A live hash without the dataset: missing, not gone.
	if _, _, err := ds.Meta(ctx, "plt_x.vs_y.user_id"); !errors.Is(err, dataset.ErrMissing) || errors.Is(err, state.ErrGone) {
		t.Errorf("Meta of an unwritten dataset = %v, want ErrMissing", err)
	}
	if _, err := ds.GetChunk(ctx, dsWd, chunks); !errors.Is(err, dataset.ErrMissing) || errors.Is(err, state.ErrGone) {
		t.Errorf("GetChunk past the last chunk = %v, want ErrMissing", err)
	}
}

func TestRecordErrorTruncates(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	// 'a' then 3-byte runes, so byte 2000 falls inside a rune.
	msg := "a" + strings.Repeat("語", 1000)
	if err := e.st.RecordError(ctx, id, srcWd, msg); err != nil {
		t.Fatal(err)
	}
	got := e.hash(t, id)[state.ErrorField(srcWd)]
	if !utf8.ValidString(got) {
		t.Errorf("stored error is not valid UTF-8: ...%q", got[len(got)-8:])
	}
	if !strings.HasSuffix(got, "…") || !strings.HasPrefix(msg, strings.TrimSuffix(got, "…")) {
		t.Errorf("stored error is not a prefix of the message followed by …: %d bytes", len(got))
	}
	if len(got) > 2000+len("…") {
		t.Errorf("stored error has %d bytes", len(got))
	}
	short := "short error"
	if err := e.st.RecordError(ctx, id, srcWd, short); err != nil {
		t.Fatal(err)
	}
	if got := e.hash(t, id)[state.ErrorField(srcWd)]; got != short {
		t.Errorf("stored error = %q, want %q", got, short)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	e.create(t, id+1)
	if err := e.st.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if e.exists(t, id) {
		t.Errorf("hash %d still there after Delete", id)
	}
	if !e.exists(t, id+1) {
		t.Errorf("Delete(%d) removed hash %d too", id, id+1)
	}
}

// NoteError records even when the caller's context has already expired
// (the deadline may be what failed), and a gone hash is not an error.
func TestNoteError(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.create(t, id)
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.st.NoteError(expired, id, srcWd, errors.New("query timed out")); err != nil {
		t.Fatal(err)
	}
	if got := e.hash(t, id)[state.ErrorField(srcWd)]; got != "query timed out" {
		t.Errorf("stored error = %q", got)
	}
	if err := e.st.NoteError(context.Background(), id+1, srcWd, errors.New("x")); err != nil {
		t.Errorf("gone hash: %v, want nil", err)
	}
	if n, _ := e.rdb.Exists(context.Background(), e.st.Key(id+1)).Result(); n != 0 {
		t.Error("NoteError created a missing hash")
	}
}

// Two attempts of one listener overlap (a redelivery while the first still
// runs) and the source changes between their queries: each writes its own
// fields, the first to be marked done counts, the other's writes are
// refused from then on or its dataset is dropped, and readers see exactly
// one attempt's rows, never a mix. Both orders.
func TestOverlappingAttempts(t *testing.T) {
	t.Parallel()
	rows := func(tag string, n int) [][]string {
		var out [][]string
		for i := range n {
			out = append(out, []string{strconv.Itoa(i + 1), tag})
		}
		return out
	}
	write := func(t *testing.T, st dataset.WriteStore, rs [][]string) (int64, int64, error) {
		t.Helper()
		w := dataset.NewWriter(context.Background(), st, dsWd, 64)
		for _, r := range rs {
			if err := w.Write(r); err != nil {
				return 0, 0, err
			}
		}
		return w.Close()
	}
	read := func(t *testing.T, st dataset.Store) [][]string {
		t.Helper()
		r, err := dataset.Open(context.Background(), st, dsWd, 2)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]string
		for {
			row, err := r.Next()
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, append([]string(nil), row...))
		}
	}
	for _, firstWins := range []bool{true, false} {
		t.Run(fmt.Sprintf("firstWins=%v", firstWins), func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ctx := context.Background()
			e.create(t, id)
			a1, err := e.st.NewAttempt(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			a2, err := e.st.NewAttempt(ctx, id)
			if err != nil || a2 == a1 {
				t.Fatalf("NewAttempt = %d, %v after %d; want a fresh ID", a2, err, a1)
			}
			guard := state.DoneField(1, srcWd)
			old, changed := rows("old", 20), rows("new", 25) // the rows changed between the two queries
			st1, st2 := e.st.Writer(id, guard, a1, nil), e.st.Writer(id, guard, a2, nil)
			c1, r1, err := write(t, st1, old)
			if err != nil {
				t.Fatal(err)
			}
			winner, loser, loserStore, loserRows := a1, a2, st2, changed
			wc, wr := c1, r1
			if !firstWins {
				// The second attempt writes everything and is marked done
				// first; the first one's MarkDone then loses.
				c2, r2, err := write(t, st2, changed)
				if err != nil {
					t.Fatal(err)
				}
				winner, loser, wc, wr = a2, a1, c2, r2
			}
			d, err := e.st.MarkDone(ctx, id, 1, srcWd, dsWd, winner, wc, wr)
			if err != nil || !d.Counted || d.Attempt != winner {
				t.Fatalf("winner's MarkDone = %+v, %v", d, err)
			}
			if firstWins {
				// The second attempt's writes are refused from now on.
				if _, _, err := write(t, loserStore, loserRows); !errors.Is(err, state.ErrSuperseded) {
					t.Fatalf("late attempt's write = %v, want ErrSuperseded", err)
				}
			} else {
				d, err := e.st.MarkDone(ctx, id, 1, srcWd, dsWd, loser, c1, r1)
				if err != nil || d.Counted || d.Attempt != winner {
					t.Fatalf("loser's MarkDone = %+v, %v; want not counted, attempt %d", d, err, winner)
				}
			}
			if err := e.st.DropAttempt(ctx, id, dsWd, loser); err != nil {
				t.Fatal(err)
			}
			snap, err := e.st.Read(ctx, id, [][]string{{srcWd}})
			if err != nil {
				t.Fatal(err)
			}
			want := old
			if !firstWins {
				want = changed
			}
			got := read(t, e.st.Reader(id, map[string]int64{dsWd: snap.Attempts[1][srcWd]}))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rows read (-want +got):\n%s", diff)
			}
			for f := range e.hash(t, id) {
				if strings.HasPrefix(f, state.AttemptName(dsWd, loser)+"#") {
					t.Errorf("losing attempt's field %s left behind", f)
				}
			}
		})
	}
}
