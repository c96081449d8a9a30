package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
)

// Dataset names, spelled out as the listeners and the hash know them.
const (
	dsTags     = "plt_user.vs_user_tag_relation.user_id"
	dsWithdraw = "plt_fund.vs_withdraw.user_id"
	dsPairs    = "aggregate.stage1.user_id"
	dsPayment  = "plt_fund.vs_payment.user_id"
)

// fixture is the datasets of one report run, by name.
type fixture map[string][][]string

func load(t testing.TB, limit int, f fixture) *dataset.MemStore {
	t.Helper()
	st := dataset.NewMemStore()
	for name, rows := range f {
		if err := st.Put(context.Background(), name, limit, rows); err != nil {
			t.Fatalf("Put %s: %v", name, err)
		}
	}
	return st
}

func readAll(t testing.TB, st dataset.Store, name string, width int) [][]string {
	t.Helper()
	r, err := dataset.Open(context.Background(), st, name, width)
	if err != nil {
		t.Fatalf("Open %s: %v", name, err)
	}
	var rows [][]string
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		rows = append(rows, slices.Clone(row))
	}
}

// join runs report typ's Join and collects the rows (emit's slice is reused).
func join(st dataset.Store, typ string) ([][]string, error) {
	r, _ := Lookup(typ)
	var rows [][]string
	err := r.Join(context.Background(), st, func(row []string) error {
		if len(row) != len(r.Header) {
			return fmt.Errorf("row %v has %d fields, header %d", row, len(row), len(r.Header))
		}
		rows = append(rows, slices.Clone(row))
		return nil
	})
	return rows, err
}

func between(st dataset.WriteStore, limit int) (bool, error) {
	r, _ := Lookup("withdraw_by_tag_with_payments")
	return r.Between(context.Background(), 1, st, limit, dataset.S2)
}

const t0 = "2026-01-05T10:00:00Z"

// The stage-1 datasets as the listeners write them: tags filtered to the
// requested ones (3 and 10), both in user order.
var (
	tagRows = [][]string{
		{"1", "3"}, {"1", "10"}, // tag numbers in numeric order: 3 before 10
		{"2", "10"},
		{"4", "3"}, // tagged, no withdrawals
		{"5", "3"},
		{"12", "10"}, // tagged, no withdrawals, after the last withdrawal's user
	}
	withdrawRows = [][]string{
		{"1", "101", "12.50", "USD", "SUCCESS", t0},
		{"1", "105", "0.00", "EUR", "PENDING", t0},
		{"1", "107", "3.00", "USD", "FAILED,RETRY", t0},
		{"2", "102", "99999999.99", "USD", `NEEDS"REVIEW`, t0},
		{"3", "103", "5.00", "USD", "SUCCESS", t0}, // user without tags
		{"5", "104", "1.00", "JPY", "SUCCESS", t0},
		{"5", "106", "2.00", "CNY", "multi\nline", t0},
		{"5", "108", "1.00", "JPY", "", t0},
		{"11", "109", "7.00", "USD", "SUCCESS", t0}, // untagged, between tagged users
	}
	// What the vs_payment listener answers for the pairs of Between.
	paymentRows = [][]string{
		{"1", "EUR", "0", "0.00"},
		{"1", "USD", "2", "30.00"},
		{"2", "USD", "0", "0.00"},
		{"5", "CNY", "1", "7.00"},
		{"5", "JPY", "3", "4.50"},
	}
	wantPairs = [][]string{{"1", "EUR"}, {"1", "USD"}, {"2", "USD"}, {"5", "CNY"}, {"5", "JPY"}}
	wantJoin  = [][]string{
		{"101", "1", "3;10", "12.50", "USD", "SUCCESS", t0},
		{"105", "1", "3;10", "0.00", "EUR", "PENDING", t0},
		{"107", "1", "3;10", "3.00", "USD", "FAILED,RETRY", t0},
		{"102", "2", "10", "99999999.99", "USD", `NEEDS"REVIEW`, t0},
		{"104", "5", "3", "1.00", "JPY", "SUCCESS", t0},
		{"106", "5", "3", "2.00", "CNY", "multi\nline", t0},
		{"108", "5", "3", "1.00", "JPY", "", t0},
	}
	wantJoinPayments = [][]string{
		{"101", "1", "3;10", "12.50", "USD", "SUCCESS", t0, "2", "30.00"},
		{"105", "1", "3;10", "0.00", "EUR", "PENDING", t0, "0", "0.00"},
		{"107", "1", "3;10", "3.00", "USD", "FAILED,RETRY", t0, "2", "30.00"},
		{"102", "2", "10", "99999999.99", "USD", `NEEDS"REVIEW`, t0, "0", "0.00"},
		{"104", "5", "3", "1.00", "JPY", "SUCCESS", t0, "3", "4.50"},
		{"106", "5", "3", "2.00", "CNY", "multi\nline", t0, "1", "7.00"},
		{"108", "5", "3", "1.00", "JPY", "", t0, "3", "4.50"},
	}
)

func TestJoin(t *testing.T) {
	t.Parallel()
	// 0 is the default chunk size (one chunk); 64 bytes spreads every
	// dataset over many chunks; 1 puts each row in its own chunk.
	for _, limit := range []int{0, 64, 1} {
		t.Run(fmt.Sprintf("chunk limit %d", limit), func(t *testing.T) {
			t.Parallel()
			st := load(t, limit, fixture{dsTags: tagRows, dsWithdraw: withdrawRows})
			if limit > 0 {
				if chunks, _, _ := st.Meta(context.Background(), dsWithdraw); chunks < 4 {
					t.Fatalf("withdrawals fit in %d chunks; the test wants many", chunks)
				}
			}
			got, err := join(st, "withdraw_by_tag")
			if err != nil {
				t.Fatalf("withdraw_by_tag Join: %v", err)
			}
			if diff := cmp.Diff(wantJoin, got); diff != "" {
				t.Errorf("withdraw_by_tag rows (-want +got):\n%s", diff)
			}

			next, err := between(st, limit)
			if err != nil || !next {
				t.Fatalf("Between = %v, %v; want true, nil", next, err)
			}
			if diff := cmp.Diff(wantPairs, readAll(t, st, dsPairs, 2)); diff != "" {
				t.Errorf("stage-1 pairs (-want +got):\n%s", diff)
			}
			if err := st.Put(context.Background(), dsPayment, limit, paymentRows); err != nil {
				t.Fatal(err)
			}
			got, err = join(st, "withdraw_by_tag_with_payments")
			if err != nil {
				t.Fatalf("withdraw_by_tag_with_payments Join: %v", err)
			}
			if diff := cmp.Diff(wantJoinPayments, got); diff != "" {
				t.Errorf("withdraw_by_tag_with_payments rows (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBetweenPairsDistinctAndSorted(t *testing.T) {
	t.Parallel()
	st := load(t, 64, fixture{
		dsTags: {{"7", "3"}, {"8", "3"}, {"9", "10"}},
		dsWithdraw: {
			{"7", "1", "1.00", "USD", "S", t0},
			{"7", "2", "1.00", "EUR", "S", t0},
			{"7", "3", "1.00", "USD", "S", t0},
			{"7", "4", "1.00", "AUD", "S", t0},
			{"7", "5", "1.00", "EUR", "S", t0},
			{"8", "6", "1.00", "USD", "S", t0}, // tagged: its own pair, after 7's
			{"9", "7", "1.00", "usd", "S", t0}, // currencies are compared byte for byte
			{"9", "8", "1.00", "USD", "S", t0},
		},
	})
	if next, err := between(st, 64); err != nil || !next {
		t.Fatalf("Between = %v, %v; want true, nil", next, err)
	}
	want := [][]string{{"7", "AUD"}, {"7", "EUR"}, {"7", "USD"}, {"8", "USD"}, {"9", "USD"}, {"9", "usd"}}
	if diff := cmp.Diff(want, readAll(t, st, dsPairs, 2)); diff != "" {
		t.Errorf("stage-1 pairs (-want +got):\n%s", diff)
	}
}

func TestJoinEmpty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		f    fixture
	}{
		{"no rows at all", fixture{dsTags: nil, dsWithdraw: nil}},
		{"tags but no withdrawals", fixture{dsTags: tagRows, dsWithdraw: nil}},
		{"withdrawals but no tagged user", fixture{dsTags: nil, dsWithdraw: withdrawRows}},
		{"no tagged user withdrew", fixture{dsTags: {{"4", "3"}, {"12", "10"}}, dsWithdraw: withdrawRows}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := load(t, 64, tt.f)
			got, err := join(st, "withdraw_by_tag")
			if err != nil || got != nil {
				t.Errorf("withdraw_by_tag Join = %v, %v; want no rows, nil", got, err)
			}
			next, err := between(st, 64)
			if err != nil || next {
				t.Fatalf("Between = %v, %v; want false, nil", next, err)
			}
			if rows := readAll(t, st, dsPairs, 2); rows != nil {
				t.Errorf("stage-1 pairs = %v, want none", rows)
			}
			// Stage 2 is skipped, so there is no payment dataset at all.
			got, err = join(st, "withdraw_by_tag_with_payments")
			if err != nil || got != nil {
				t.Errorf("withdraw_by_tag_with_payments Join without stage 2 = %v, %v; want no rows, nil", got, err)
			}
		})
	}
}

func TestJoinErrors(t *testing.T) {
	t.Parallel()
	paired := func(pay [][]string) fixture {
		return fixture{dsTags: tagRows, dsWithdraw: withdrawRows, dsPayment: pay}
	}
	tests := []struct {
		name    string
		f       fixture
		report  string // "" runs Between
		wantErr error
	}{
		{"withdrawals out of key order", fixture{dsTags: tagRows, dsWithdraw: [][]string{
			{"1", "101", "1.00", "USD", "S", t0}, {"5", "104", "1.00", "USD", "S", t0}, {"2", "102", "1.00", "USD", "S", t0},
		}}, "withdraw_by_tag", dataset.ErrCorrupt},
		{"withdrawals out of key order, Between", fixture{dsTags: tagRows, dsWithdraw: [][]string{
			{"2", "102", "1.00", "USD", "S", t0}, {"1", "101", "1.00", "USD", "S", t0},
		}}, "", dataset.ErrCorrupt},
		{"tags out of key order", fixture{dsTags: [][]string{{"1", "3"}, {"4", "3"}, {"2", "3"}}, dsWithdraw: [][]string{
			{"1", "101", "1.00", "USD", "S", t0}, {"5", "104", "1.00", "USD", "S", t0},
		}}, "withdraw_by_tag", dataset.ErrCorrupt},
		{"key not an integer", fixture{dsTags: tagRows, dsWithdraw: [][]string{
			{"1", "101", "1.00", "USD", "S", t0}, {"x", "102", "1.00", "USD", "S", t0},
		}}, "withdraw_by_tag", dataset.ErrCorrupt},
		{"wrong width", fixture{dsTags: tagRows, dsWithdraw: [][]string{{"1", "101", "1.00", "USD", "S"}}},
			"withdraw_by_tag", dataset.ErrCorrupt},
		{"withdrawals missing", fixture{dsTags: tagRows}, "withdraw_by_tag", dataset.ErrMissing},
		{"tags missing", fixture{dsWithdraw: withdrawRows}, "withdraw_by_tag", dataset.ErrMissing},
		{"payment missing although stage 1 has rows", fixture{dsTags: tagRows, dsWithdraw: withdrawRows},
			"withdraw_by_tag_with_payments", dataset.ErrMissing},
		{"payment has no row for a pair", paired(slices.Delete(slices.Clone(paymentRows), 4, 5)),
			"withdraw_by_tag_with_payments", dataset.ErrCorrupt},
		{"payment has no row for a user", paired(slices.Delete(slices.Clone(paymentRows), 2, 3)),
			"withdraw_by_tag_with_payments", dataset.ErrCorrupt},
		{"payment rows out of key order", paired([][]string{
			{"1", "EUR", "0", "0.00"}, {"1", "USD", "2", "30.00"}, {"5", "CNY", "1", "7.00"}, {"2", "USD", "0", "0.00"}, {"5", "JPY", "3", "4.50"},
		}), "withdraw_by_tag_with_payments", dataset.ErrCorrupt},
		{"payment has no rows", paired(nil), "withdraw_by_tag_with_payments", dataset.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := load(t, 64, tt.f)
			var err error
			if tt.report == "" {
				_, err = between(st, 64)
			} else {
				_, err = join(st, tt.report)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want one wrapping %v", err, tt.wantErr)
			}
		})
	}
}

func TestJoinStopsOnEmitError(t *testing.T) {
	t.Parallel()
	stop := errors.New("client went away")
	for _, typ := range Types() {
		r, _ := Lookup(typ)
		st := generatedStore(t, r, 3)
		n := 0
		err := r.Join(context.Background(), st, func([]string) error {
			n++
			if n == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 2 {
			t.Errorf("%s: Join = %v after %d rows; want the emit error after 2", typ, err, n)
		}
	}
}

func TestBetweenHasOnlyStage1(t *testing.T) {
	t.Parallel()
	st := load(t, 64, fixture{dsTags: tagRows, dsWithdraw: withdrawRows})
	r, _ := Lookup("withdraw_by_tag_with_payments")
	if _, err := r.Between(context.Background(), 2, st, 64, dataset.S2); err == nil {
		t.Errorf("Between(stage 2) returned no error")
	}
}

// benchStore builds a stage-2-complete store: users 1..n/2 each with two
// tags and two withdrawals in two currencies, so n withdrawal rows.
func benchStore(b *testing.B, n int) *dataset.MemStore {
	b.Helper()
	ctx := context.Background()
	st := dataset.NewMemStore()
	tags := dataset.NewWriter(ctx, st, dsTags, 0)
	wd := dataset.NewWriter(ctx, st, dsWithdraw, 0)
	for u := 1; u <= n/2; u++ {
		us := fmt.Sprint(u)
		for _, tag := range []string{"3", "10"} {
			if err := tags.Write([]string{us, tag}); err != nil {
				b.Fatal(err)
			}
		}
		for i, cur := range []string{"USD", "EUR"} {
			if err := wd.Write([]string{us, fmt.Sprint(2*u + i), "1234.56", cur, "SUCCESS", t0}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for name, w := range map[string]*dataset.Writer{dsTags: tags, dsWithdraw: wd} {
		c, r, err := w.Close()
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Finish(ctx, name, c, r); err != nil {
			b.Fatal(err)
		}
	}
	if next, err := between(st, 0); err != nil || !next {
		b.Fatalf("Between = %v, %v", next, err)
	}
	pairs, err := dataset.Open(ctx, st, dsPairs, 2)
	if err != nil {
		b.Fatal(err)
	}
	pay := dataset.NewWriter(ctx, st, dsPayment, 0)
	for {
		p, err := pairs.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := pay.Write([]string{p[0], p[1], "3", "100.00"}); err != nil {
			b.Fatal(err)
		}
	}
	c, r, err := pay.Close()
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Finish(ctx, dsPayment, c, r); err != nil {
		b.Fatal(err)
	}
	return st
}

func BenchmarkJoinWithPayments(b *testing.B) {
	const n = 200_000
	st := benchStore(b, n)
	r, _ := Lookup("withdraw_by_tag_with_payments")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rows := 0
		if err := r.Join(ctx, st, func([]string) error { rows++; return nil }); err != nil {
			b.Fatal(err)
		}
		if rows != n {
			b.Fatalf("joined %d rows, want %d", rows, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkBetweenStage1(b *testing.B) {
	const n = 200_000
	st := benchStore(b, n)
	b.ReportAllocs()
	for b.Loop() {
		if next, err := between(st, 0); err != nil || !next {
			b.Fatalf("Between = %v, %v", next, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// TaggedRows, the one-line Join of a report of tagged users' rows, gives
// withdraw_by_tag's rows from the withdrawals in any column order, and
// refuses a column its source does not have.
func TestTaggedRows(t *testing.T) {
	t.Parallel()
	st := load(t, 64, fixture{dsTags: tagRows, dsWithdraw: withdrawRows})
	var got [][]string
	j := TaggedRows(withdraw, "id", "user_id", TagIDs, "amount", "currency", "status", "created_at")
	if err := j(context.Background(), st, func(row []string) error { got = append(got, slices.Clone(row)); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantJoin, got); diff != "" {
		t.Errorf("rows (-withdraw_by_tag +TaggedRows):\n%s", diff)
	}
	got = nil
	j = TaggedRows(withdraw, TagIDs, "id")
	if err := j(context.Background(), st, func(row []string) error { got = append(got, slices.Clone(row)); return nil }); err != nil {
		t.Fatal(err)
	}
	for i, row := range got {
		if want := []string{wantJoin[i][2], wantJoin[i][0]}; !slices.Equal(row, want) {
			t.Errorf("row %d = %q, want %q", i, row, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("TaggedRows with an unknown column did not panic")
		}
	}()
	TaggedRows(withdraw, "no_such_column")
}

// A report reads each table once: its sources' names are its messages',
// markers' and datasets' identity.
func TestAddReportRefusesOneTableTwice(t *testing.T) {
	t.Parallel()
	shadow := withdraw
	shadow.EntryPoint = "ListenWithdrawAgain"
	for name, r := range map[string]Report{
		"same table twice": {Type: "twice_test", Stages: [][]Source{{userTagRelation, withdraw, withdraw}}},
		"unregistered":     {Type: "shadow_test", Stages: [][]Source{{userTagRelation, shadow}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: addReport did not panic", name)
				}
			}()
			addReport(r)
		}()
		if _, ok := Lookup(r.Type); ok {
			t.Errorf("%s: registered anyway", name)
		}
	}
}
