package state_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/state"
)

// Parts of one report count apart: a part's done marker moves its own
// count and queryDoneCount once, duplicates never; a part's datasets,
// claims and inputs never touch another part's; the segments count once
// each and sum their rows.
func TestPartsCountApart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	created, parts, plan, err := e.st.CreateParts(ctx, id, "withdraw_by_tag", []byte(`{}`), 3, []byte(`[{"hi":10},{"lo":10,"hi":20},{"lo":20}]`))
	if err != nil || !created || parts != 3 || string(plan) != `[{"hi":10},{"lo":10,"hi":20},{"lo":20}]` {
		t.Fatalf("CreateParts = %v, %d, %s, %v", created, parts, plan, err)
	}
	// A re-dispatch keeps the stored plan, whatever it would plan now.
	created, parts, plan, err = e.st.CreateParts(ctx, id, "withdraw_by_tag", []byte(`{}`), 1, nil)
	if err != nil || created || parts != 3 || string(plan) != `[{"hi":10},{"lo":10,"hi":20},{"lo":20}]` {
		t.Fatalf("CreateParts again = %v, %d, %s, %v; want the stored plan of 3 parts", created, parts, plan, err)
	}
	p := func(i int) state.Part { return state.Part{Index: i, Count: 3} }
	for i := range 3 {
		w := e.st.PartWriter(id, p(i), state.PartDoneField(p(i), 1, srcWd), int64(10+i), nil)
		if err := w.PutChunk(ctx, dsWd, 0, []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	type mark struct {
		part    int
		attempt int64
		want    state.Done
	}
	for _, m := range []mark{
		{1, 11, state.Done{Counted: true, Count: 1, Attempt: 11}},
		{1, 99, state.Done{Counted: false, Count: 1, Attempt: 11}}, // duplicate
		{0, 10, state.Done{Counted: true, Count: 1, Attempt: 10}},
		{1, 11, state.Done{Counted: false, Count: 1, Attempt: 11}},
	} {
		got, err := e.st.MarkPartDone(ctx, id, p(m.part), 1, srcWd, dsWd, m.attempt, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(m.want, got); diff != "" {
			t.Errorf("MarkPartDone(part %d, attempt %d) (-want +got):\n%s", m.part, m.attempt, diff)
		}
	}
	h := e.hash(t, id)
	if h[state.FieldDoneCount] != "2" {
		t.Errorf("queryDoneCount = %q, want 2 (one per (stage, source, part))", h[state.FieldDoneCount])
	}
	// Each part reads its own chosen dataset.
	for i, want := range []string{"a", "b"} {
		r := e.st.PartReader(id, p(i), map[string]int64{dsWd: int64(10 + i)})
		got, err := r.GetChunk(ctx, dsWd, 0)
		if err != nil || string(got) != want {
			t.Errorf("part %d chunk = %q, %v; want %q", i, got, err, want)
		}
	}
	if _, err := e.st.PartReader(id, p(2), map[string]int64{dsWd: 10}).GetChunk(ctx, dsWd, 0); err == nil {
		t.Errorf("part 2 read part 0's attempt")
	}
	if done, err := e.st.IsPartDone(ctx, id, p(2), 1, srcWd); err != nil || done {
		t.Errorf("IsPartDone(part 2) = %v, %v; want false", done, err)
	}
	// Claims per (stage, part).
	if c, _ := e.st.ClaimPart(ctx, id, p(0), 1, "m0", 1, holdLong); c != state.Claimed {
		t.Errorf("ClaimPart(part 0) = %v, want Claimed", c)
	}
	if c, _ := e.st.ClaimPart(ctx, id, p(1), 1, "m1", 1, holdLong); c != state.Claimed {
		t.Errorf("ClaimPart(part 1) held by part 0's claim: %v", c)
	}
	if c, _ := e.st.ClaimPart(ctx, id, p(0), 1, "other", 1, holdLong); c != state.Held {
		t.Errorf("ClaimPart(part 0) by another message = %v, want Held", c)
	}
	pr, err := e.st.ReadProgress(ctx, id, [][]string{{srcTags, srcWd}})
	if err != nil {
		t.Fatal(err)
	}
	wantPr := state.Progress{Parts: 3, Plan: plan, Missing: [][]int{{0, 1, 2}}}
	if diff := cmp.Diff(wantPr, pr); diff != "" {
		t.Errorf("ReadProgress (-want +got):\n%s", diff)
	}
	for _, src := range []string{srcTags} {
		for i := range 2 {
			if _, err := e.st.MarkPartDone(ctx, id, p(i), 1, src, "x", 1, 0, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	pr, _ = e.st.ReadProgress(ctx, id, [][]string{{srcTags, srcWd}})
	if got := pr.StageDone(1); got != 2 {
		t.Errorf("StageDone(1) = %d, want 2 (parts 0 and 1)", got)
	}
	// Segments.
	for _, s := range []struct {
		part int
		rows int64
		want state.Segments
	}{
		{2, 5, state.Segments{Counted: true, Done: 1, Rows: 5}},
		{2, 5, state.Segments{Counted: false, Done: 1, Rows: 5}},
		{0, 0, state.Segments{Counted: true, Done: 2, Rows: 5}},
		{1, 7, state.Segments{Counted: true, Done: 3, Rows: 12}},
	} {
		got, err := e.st.MarkSegment(ctx, id, p(s.part), s.rows)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("MarkSegment(part %d) (-want +got):\n%s", s.part, diff)
		}
	}
	// A written segment means its part finished every stage, including
	// one it skipped (part 2 never marked stage 1 done).
	pr, _ = e.st.ReadProgress(ctx, id, [][]string{{srcTags, srcWd}})
	wantPr = state.Progress{Parts: 3, Plan: plan, Missing: [][]int{nil}, Segments: []int{0, 1, 2}}
	if diff := cmp.Diff(wantPr, pr); diff != "" {
		t.Errorf("ReadProgress after every segment (-want +got):\n%s", diff)
	}
}

// A hash made before parts (or by Create) is a one-part report under the
// names it always had: a deployment drains the reports started before it.
func TestHashBeforePartsIsOnePart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.create(t, id)
	if _, err := e.st.MarkDone(ctx, id, 1, srcWd, dsWd, 4, 1, 3); err != nil {
		t.Fatal(err)
	}
	snap, err := e.st.ReadPart(ctx, id, state.Whole, [][]string{{srcTags, srcWd}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Parts != 1 || snap.DoneCount != 1 || !snap.Done[1][srcWd] || snap.Attempts[1][srcWd] != 4 {
		t.Errorf("ReadPart(Whole) of a hash before parts = %+v", snap)
	}
	created, parts, plan, err := e.st.CreateParts(ctx, id, "withdraw_by_tag_with_payments", []byte(`{}`), 4, []byte(`[]`))
	if err != nil || created || parts != 1 || plan != nil {
		t.Errorf("CreateParts over a hash before parts = %v, %d, %s, %v; want its one part kept", created, parts, plan, err)
	}
	if got := state.Whole.Dataset(dsWd); got != dsWd {
		t.Errorf("Whole.Dataset = %q, want the name unchanged", got)
	}
}
