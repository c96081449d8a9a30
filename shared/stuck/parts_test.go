package stuck_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/stuck"
)

func TestStuckPartsNamesPartsDoneAndMissing(t *testing.T) {
	t.Parallel()
	rep, _ := report.Lookup("withdraw_by_tag_with_payments")
	tests := []struct {
		name string
		pr   state.Progress
		want string
	}{
		{"stage 1 part missing", state.Progress{Parts: 3, Plan: []byte(`[{"hi":100},{"lo":100,"hi":200},{"lo":200}]`), Missing: [][]int{{1}, {0, 1, 2}}},
			"report still PROCESSING after 2h0m0s: 3 parts; stage 1: 2 of 3 parts done, missing part 2 (user_id [100, 200)); stage 2: 0 of 3 parts done, missing part 1 (user_id < 100), part 2 (user_id [100, 200)), part 3 (user_id >= 200); segments written: 0 of 3"},
		{"stages done, a segment missing", state.Progress{Parts: 2, Plan: []byte(`[{"hi":5},{"lo":5}]`), Missing: [][]int{nil, nil}, Segments: []int{0}},
			"report still PROCESSING after 2h0m0s: 2 parts; stage 1: 2 of 2 parts done; stage 2: 2 of 2 parts done; segments written: 1 of 2"},
		{"unreadable plan", state.Progress{Parts: 2, Plan: []byte(`x`), Missing: [][]int{{0}, {0, 1}}},
			"report still PROCESSING after 2h0m0s: 2 parts; stage 1: 1 of 2 parts done, missing part 1; stage 2: 0 of 2 parts done, missing part 1, part 2; segments written: 0 of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, stuck.StuckParts(rep, true, state.Snapshot{Parts: tt.pr.Parts}, tt.pr, 2*time.Hour)); diff != "" {
				t.Errorf("StuckParts (-want +got):\n%s", diff)
			}
		})
	}
}
