package record_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fanoutexport/fanoutexport/shared/testdb"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fanoutexport/fanoutexport/shared/record"
)

// newRepo creates a throwaway database with the record table, dropped
// when the test ends.
func newRepo(t *testing.T) (*record.Repo, *sql.DB) {
	t.Helper()
	db := testdb.New(t, "rectest", record.DDL)
	return record.NewRepo(db), db
}

func TestInsertGet(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	ctx := context.Background()
	params := []byte(`{"tagIds":[3,10],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`)
	before := time.Now().Add(-time.Minute)
	id, err := repo.Insert(ctx, "withdraw_by_tag", params)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := repo.Insert(ctx, "withdraw_by_tag", params)
	if err != nil || id2 == id {
		t.Fatalf("second Insert = %d, %v; want a new ID", id2, err)
	}
	got, err := repo.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := record.Record{ID: id, ReportType: "withdraw_by_tag", Params: params, Status: record.Pending}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(record.Record{}, "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("Get after Insert (-want +got):\n%s", diff)
	}
	if got.CreatedAt.Before(before) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want a recent UTC time", got.CreatedAt)
	}
	if _, err := repo.Get(ctx, id2+1000); !errors.Is(err, record.ErrNotFound) {
		t.Errorf("Get of a missing id = %v, want ErrNotFound", err)
	}
}

// op is one status update.
type op struct {
	name string
	do   func(ctx context.Context, r *record.Repo, id int64) (bool, error)
}

var (
	processing = op{"MarkProcessing", func(ctx context.Context, r *record.Repo, id int64) (bool, error) {
		return r.MarkProcessing(ctx, id)
	}}
	success = op{"MarkSuccess", func(ctx context.Context, r *record.Repo, id int64) (bool, error) {
		return r.MarkSuccess(ctx, id, "gs://reports/1.csv", 42)
	}}
	success2 = op{"MarkSuccess again", func(ctx context.Context, r *record.Repo, id int64) (bool, error) {
		return r.MarkSuccess(ctx, id, "gs://reports/other.csv", 7)
	}}
	failed = op{"MarkFailed", func(ctx context.Context, r *record.Repo, id int64) (bool, error) {
		return r.MarkFailed(ctx, id, "listener plt_fund.vs_withdraw: timeout")
	}}
	failed2 = op{"MarkFailed again", func(ctx context.Context, r *record.Repo, id int64) (bool, error) {
		return r.MarkFailed(ctx, id, "a late duplicate")
	}}
)

// state is what a user sees of a record.
type state struct {
	Status   record.Status
	FilePath string
	RowCount int64
	Reason   string
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	var (
		pending    = state{Status: record.Pending}
		inProgress = state{Status: record.Processing}
		succeeded  = state{record.Success, "gs://reports/1.csv", 42, ""}
		failedSt   = state{Status: record.Failed, Reason: "listener plt_fund.vs_withdraw: timeout"}
	)
	tests := []struct {
		setup  []op
		op     op
		wantOK bool
		want   state
	}{
		{nil, processing, true, inProgress},
		{nil, success, false, pending},
		{nil, failed, true, failedSt},
		{[]op{processing}, processing, false, inProgress},
		{[]op{processing}, success, true, succeeded},
		{[]op{processing}, failed, true, failedSt},
		{[]op{processing, success}, processing, false, succeeded},
		{[]op{processing, success}, success2, false, succeeded},
		{[]op{processing, success}, failed, false, succeeded},
		{[]op{failed}, processing, false, failedSt},
		{[]op{failed}, success, false, failedSt},
		{[]op{processing, failed}, success, false, failedSt},
		{[]op{processing, failed}, failed2, false, failedSt},
	}
	for _, tt := range tests {
		var path []string
		for _, o := range tt.setup {
			path = append(path, o.name)
		}
		t.Run(fmt.Sprintf("%s after [%s]", tt.op.name, strings.Join(path, ",")), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			id, err := repo.Insert(ctx, "withdraw_by_tag", []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range tt.setup {
				if ok, err := o.do(ctx, repo, id); err != nil || !ok {
					t.Fatalf("setup %s = %v, %v", o.name, ok, err)
				}
			}
			ok, err := tt.op.do(ctx, repo, id)
			if err != nil || ok != tt.wantOK {
				t.Errorf("%s = %v, %v; want %v, nil", tt.op.name, ok, err, tt.wantOK)
			}
			rec, err := repo.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, state{rec.Status, rec.FilePath, rec.RowCount, rec.FailReason}); diff != "" {
				t.Errorf("record after %s (-want +got):\n%s", tt.op.name, diff)
			}
		})
	}
}

func TestUpdatesOnMissingRecord(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	for _, o := range []op{processing, success, failed} {
		if ok, err := o.do(context.Background(), repo, 424242); ok || err != nil {
			t.Errorf("%s of a missing record = %v, %v; want false, nil", o.name, ok, err)
		}
	}
}

// TestConcurrentFinalUpdates: racing SUCCESS and FAILED, one wins and the
// record shows the winner's outcome.
func TestConcurrentFinalUpdates(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	ctx := context.Background()
	id, err := repo.Insert(ctx, "withdraw_by_tag", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := repo.MarkProcessing(ctx, id); err != nil || !ok {
		t.Fatalf("MarkProcessing = %v, %v", ok, err)
	}
	const n = 20
	won := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				won[i], err = success.do(ctx, repo, id)
			} else {
				won[i], err = failed.do(ctx, repo, id)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	winners := 0
	winner := -1
	for i, w := range won {
		if w {
			winners++
			winner = i
		}
	}
	if winners != 1 {
		t.Fatalf("%d updates won, want exactly 1", winners)
	}
	rec, err := repo.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := record.Success
	if winner%2 == 1 {
		want = record.Failed
	}
	if rec.Status != want {
		t.Errorf("status = %v, but the winning update was for %v", rec.Status, want)
	}
}

func TestFailReason(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	exact := strings.Repeat("r", record.MaxReasonBytes)
	// 'a' then 3-byte runes, so byte MaxReasonBytes falls inside a rune.
	long := "a" + strings.Repeat("語", record.MaxReasonBytes)
	tests := []struct {
		name   string
		reason string
		check  func(t *testing.T, got string)
	}{
		{"exactly the maximum is kept", exact, func(t *testing.T, got string) {
			if got != exact {
				t.Errorf("reason of %d bytes stored as %d bytes", len(exact), len(got))
			}
		}},
		{"unicode kept", "bad params: \"tagIds\" 日本語 💸", func(t *testing.T, got string) {
			if got != "bad params: \"tagIds\" 日本語 💸" {
				t.Errorf("reason = %q", got)
			}
		}},
		{"too long is cut at a rune boundary", long, func(t *testing.T, got string) {
			if !utf8.ValidString(got) {
				t.Errorf("reason is not valid UTF-8")
			}
			if len(got) > record.MaxReasonBytes {
				t.Errorf("reason has %d bytes, more than %d", len(got), record.MaxReasonBytes)
			}
			cut := strings.TrimSuffix(got, "…")
			if cut == got || !strings.HasPrefix(long, cut) || len(cut) < record.MaxReasonBytes-8 {
				t.Errorf("reason is not a long prefix of the original followed by …: %d bytes, ends %q", len(got), got[len(got)-8:])
			}
		}},
		{"invalid UTF-8 is stored, repaired", "cut mid-rune \xe8\xaa", func(t *testing.T, got string) {
			if !utf8.ValidString(got) || !strings.HasPrefix(got, "cut mid-rune ") {
				t.Errorf("reason = %q", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			id, err := repo.Insert(ctx, "withdraw_by_tag", []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := repo.MarkFailed(ctx, id, tt.reason); err != nil || !ok {
				t.Fatalf("MarkFailed = %v, %v", ok, err)
			}
			rec, err := repo.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, rec.FailReason)
		})
	}
}

func TestStatusString(t *testing.T) {
	t.Parallel()
	got := []string{record.Pending.String(), record.Processing.String(), record.Success.String(), record.Failed.String(), record.Status(9).String()}
	if diff := cmp.Diff([]string{"PENDING", "PROCESSING", "SUCCESS", "FAILED", "Status(9)"}, got); diff != "" {
		t.Errorf("Status.String (-want +got):\n%s", diff)
	}
	var final []record.Status
	for _, s := range []record.Status{record.Pending, record.Processing, record.Success, record.Failed} {
		if s.Final() {
			final = append(final, s)
		}
	}
	if diff := cmp.Diff([]record.Status{record.Success, record.Failed}, final); diff != "" {
		t.Errorf("final statuses (-want +got):\n%s", diff)
	}
}

// Touch makes a quiet record in the given status fresh again (Stale no
// longer lists it) and leaves a record in any other status as it was.
func TestTouch(t *testing.T) {
	t.Parallel()
	repo, db := newRepo(t)
	ctx := context.Background()
	insert := func(status record.Status) int64 {
		t.Helper()
		id, err := repo.Insert(ctx, "withdraw_by_tag", []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE file_download_record SET status = ?, updated_at = CURRENT_TIMESTAMP(3) - INTERVAL 10 MINUTE WHERE id = ?`, status, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	processing, failed := insert(record.Processing), insert(record.Failed)
	failedBefore, err := repo.Get(ctx, failed)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for name, id := range map[string]int64{"processing": processing, "failed": failed} {
		ok, err := repo.Touch(ctx, id, record.Processing)
		if err != nil {
			t.Fatal(err)
		}
		got[name] = ok
	}
	if diff := cmp.Diff(map[string]bool{"processing": true, "failed": false}, got); diff != "" {
		t.Errorf("Touch(…, PROCESSING) (-want +got):\n%s", diff)
	}
	stale, err := repo.Stale(ctx, record.Processing, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 0 {
		t.Errorf("Stale(PROCESSING, 1m) after Touch = %+v, want none", stale)
	}
	failedAfter, err := repo.Get(ctx, failed)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(failedBefore, failedAfter); diff != "" {
		t.Errorf("FAILED record changed by Touch(…, PROCESSING) (-before +after):\n%s", diff)
	}
}
