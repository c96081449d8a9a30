package report

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ptr(v int64) *int64 { return &v }

func TestBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		b        Bounds
		describe string
		pred     string
		args     []any
		in, out  []int64
		json     string
	}{
		{"all", Bounds{}, "all", "", nil,
			[]int64{math.MinInt64, 0, math.MaxInt64}, nil, `{}`},
		{"below", Bounds{Hi: ptr(1000)}, "user_id < 1000", "`user_id` < ?", []any{int64(1000)},
			[]int64{math.MinInt64, 999}, []int64{1000, math.MaxInt64}, `{"hi":1000}`},
		{"from", Bounds{Lo: ptr(2000)}, "user_id >= 2000", "`user_id` >= ?", []any{int64(2000)},
			[]int64{2000, math.MaxInt64}, []int64{math.MinInt64, 1999}, `{"lo":2000}`},
		{"between", Bounds{Lo: ptr(1000), Hi: ptr(2000)}, "user_id [1000, 2000)", "`user_id` >= ? AND `user_id` < ?", []any{int64(1000), int64(2000)},
			[]int64{1000, 1999}, []int64{999, 2000}, `{"lo":1000,"hi":2000}`},
		{"extremes", Bounds{Lo: ptr(math.MinInt64), Hi: ptr(math.MaxInt64)}, "user_id [-9223372036854775808, 9223372036854775807)",
			"`user_id` >= ? AND `user_id` < ?", []any{int64(math.MinInt64), int64(math.MaxInt64)},
			[]int64{math.MinInt64, math.MaxInt64 - 1}, []int64{math.MaxInt64}, `{"lo":-9223372036854775808,"hi":9223372036854775807}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.b.Describe("user_id"); got != tt.describe {
				t.Errorf("Describe = %q, want %q", got, tt.describe)
			}
			pred, args := tt.b.Predicate("user_id")
			if pred != tt.pred {
				t.Errorf("Predicate = %q, want %q", pred, tt.pred)
			}
			if diff := cmp.Diff(tt.args, args); diff != "" {
				t.Errorf("Predicate args (-want +got):\n%s", diff)
			}
			for _, k := range tt.in {
				if !tt.b.Contains(k) {
					t.Errorf("Contains(%d) = false, want true", k)
				}
			}
			for _, k := range tt.out {
				if tt.b.Contains(k) {
					t.Errorf("Contains(%d) = true, want false", k)
				}
			}
			js, err := json.Marshal(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if string(js) != tt.json {
				t.Errorf("json = %s, want %s", js, tt.json)
			}
			var back Bounds
			if err := json.Unmarshal(js, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.b, back); diff != "" {
				t.Errorf("JSON round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lo, hi int64
		n      int
		want   [][2]int64
	}{
		{1, 10, 2, [][2]int64{{1, 5}, {6, 10}}},
		{1, 10, 3, [][2]int64{{1, 3}, {4, 6}, {7, 10}}},
		{1, 2, 5, [][2]int64{{1, 1}, {2, 2}}},
		{-5, 5, 1, [][2]int64{{-5, 5}}},
		{math.MinInt64, math.MaxInt64, 2, [][2]int64{{math.MinInt64, -1}, {0, math.MaxInt64}}},
		{math.MinInt64, math.MaxInt64, 4, [][2]int64{
			{math.MinInt64, math.MinInt64/2 - 1}, {math.MinInt64 / 2, -1}, {0, math.MaxInt64/2 + 0}, {math.MaxInt64/2 + 1, math.MaxInt64}}},
		{math.MaxInt64 - 2, math.MaxInt64, 3, [][2]int64{{math.MaxInt64 - 2, math.MaxInt64 - 2}, {math.MaxInt64 - 1, math.MaxInt64 - 1}, {math.MaxInt64, math.MaxInt64}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d..%d/%d", tt.lo, tt.hi, tt.n), func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, cut(tt.lo, tt.hi, tt.n)); diff != "" {
				t.Errorf("cut (-want +got):\n%s", diff)
			}
		})
	}
}

// memEstimator answers from exact per-key counts; distort, when set, turns
// a true count into what the "database" estimates (InnoDB doubles the
// count of a range it extrapolates, and caps any range at half the table).
type memEstimator struct {
	keys    []int64 // ascending
	count   map[int64]float64
	total_  float64 // the report's estimated rows
	distort func(n, table float64) float64
	dives   int
}

func newMem(counts map[int64]float64, distort func(n, table float64) float64) *memEstimator {
	m := &memEstimator{count: counts, distort: distort}
	for k, c := range counts {
		m.keys = append(m.keys, k)
		m.total_ += c
	}
	slices.Sort(m.keys)
	return m
}

func (m *memEstimator) total(context.Context) (float64, error) { return m.total_, nil }

func (m *memEstimator) keyRange(_ context.Context, lo, hi int64) (int64, int64, bool, error) {
	m.dives++
	i := sort.Search(len(m.keys), func(i int) bool { return m.keys[i] >= lo })
	j := sort.Search(len(m.keys), func(i int) bool { return m.keys[i] > hi })
	if i >= j {
		return 0, 0, false, nil
	}
	return m.keys[i], m.keys[j-1], true, nil
}

func (m *memEstimator) exact(lo, hi int64) float64 {
	i := sort.Search(len(m.keys), func(i int) bool { return m.keys[i] >= lo })
	var n float64
	for ; i < len(m.keys) && m.keys[i] <= hi; i++ {
		n += m.count[m.keys[i]]
	}
	return n
}

func (m *memEstimator) weight(_ context.Context, lo, hi int64) (float64, error) {
	m.dives++
	n := m.exact(lo, hi)
	if m.distort != nil {
		n = m.distort(n, m.total_)
	}
	return n, nil
}

// innoDB mimics records_in_range: exact up to a few pages, doubled beyond,
// never more than half the table, never 0.
func innoDB(n, table float64) float64 {
	if n > 4000 {
		n *= 2
	}
	return max(1, min(n, table/2))
}

// checkPlan checks the plan's invariants and returns each part's true rows.
func checkPlan(t *testing.T, p Plan, m *memEstimator, maxParts int) []float64 {
	t.Helper()
	if len(p.Parts) == 0 || len(p.Parts) > maxParts {
		t.Fatalf("%d parts, want 1..%d", len(p.Parts), maxParts)
	}
	if len(p.Estimated) != len(p.Parts) {
		t.Fatalf("%d estimates for %d parts", len(p.Estimated), len(p.Parts))
	}
	var sum int64
	for _, e := range p.Estimated {
		sum += e
	}
	if sum != p.EstimatedRows {
		t.Errorf("EstimatedRows = %d, sum of Estimated = %d", p.EstimatedRows, sum)
	}
	if p.Parts[0].Lo != nil || p.Parts[len(p.Parts)-1].Hi != nil {
		t.Errorf("first part %v or last part %v is bounded", p.Parts[0], p.Parts[len(p.Parts)-1])
	}
	for i := 0; i+1 < len(p.Parts); i++ {
		a, b := p.Parts[i], p.Parts[i+1]
		if a.Hi == nil || b.Lo == nil || *a.Hi != *b.Lo {
			t.Fatalf("parts %d %v and %d %v do not meet", i, a, i+1, b)
		}
		if a.Lo != nil && *a.Lo >= *a.Hi {
			t.Fatalf("part %d %v is empty", i, a)
		}
	}
	// Every key in exactly one part (the parts meet, so one search each).
	rows := make([]float64, len(p.Parts))
	for _, k := range m.keys {
		n := 0
		for i, b := range p.Parts {
			if b.Contains(k) {
				rows[i] += m.count[k]
				n++
			}
		}
		if n != 1 {
			t.Fatalf("key %d is in %d parts", k, n)
		}
	}
	return rows
}

func ratio(rows []float64) (maxOverMedian float64) {
	s := slices.Clone(rows)
	slices.Sort(s)
	return s[len(s)-1] / s[len(s)/2]
}

func TestPlanParts(t *testing.T) {
	t.Parallel()
	uniform := map[int64]float64{}
	for u := int64(1); u <= 100_000; u++ {
		uniform[u] = 10
	}
	// Half the rows in 1% of the users: 1,000 users of 100,000 (spread
	// through the key space) hold 500 rows each, the others about 5.
	skewed := map[int64]float64{}
	for u := int64(1); u <= 100_000; u++ {
		if u%100 == 37 {
			skewed[u] = 500
		} else {
			skewed[u] = 5.0505
		}
	}
	// The same, with the heavy 1% all at the start of the key space.
	skewedLow := map[int64]float64{}
	for u := int64(1); u <= 100_000; u++ {
		if u <= 1000 {
			skewedLow[u] = 500
		} else {
			skewedLow[u] = 5.0505
		}
	}
	// One user heavier than a part among light ones.
	heavy := map[int64]float64{}
	for u := int64(1); u <= 10_000; u++ {
		heavy[u] = 10
	}
	heavy[4321] = 250_000
	extremes := map[int64]float64{math.MinInt64: 30_000, -1: 30_000, 0: 30_000, 1: 30, math.MaxInt64 - 1: 30_000, math.MaxInt64: 30_000}

	tests := []struct {
		name     string
		counts   map[int64]float64
		distort  func(n, table float64) float64
		partRows int64
		maxParts int
		parts    int     // want exactly this many parts (0: check maxRatio only)
		maxRatio float64 // largest part over the median part, by true rows
		alone    []int64 // keys that must be a part by themselves
	}{
		{name: "small is one part", counts: uniform, partRows: 1_000_000, maxParts: 64, parts: 1},
		{name: "exactly partRows is one part", counts: uniform, partRows: 1_000_000, maxParts: 64, parts: 1},
		{name: "uniform", counts: uniform, partRows: 100_000, maxParts: 64, parts: 10, maxRatio: 1.3},
		{name: "uniform, innodb estimates", counts: uniform, distort: innoDB, partRows: 100_000, maxParts: 64, parts: 10, maxRatio: 1.3},
		{name: "uniform, capped", counts: uniform, partRows: 10_000, maxParts: 8, parts: 8, maxRatio: 1.3},
		{name: "maxParts 1", counts: uniform, partRows: 10_000, maxParts: 1, parts: 1},
		{name: "skewed", counts: skewed, partRows: 50_000, maxParts: 64, maxRatio: 1.5},
		{name: "skewed, innodb estimates", counts: skewed, distort: innoDB, partRows: 50_000, maxParts: 64, maxRatio: 3},
		{name: "skewed low", counts: skewedLow, partRows: 50_000, maxParts: 64, maxRatio: 1.5},
		{name: "skewed low, innodb estimates", counts: skewedLow, distort: innoDB, partRows: 50_000, maxParts: 64, maxRatio: 3},
		{name: "skewed, tiny parts", counts: skewed, partRows: 2_000, maxParts: 1000, maxRatio: 3},
		{name: "one heavy user", counts: heavy, partRows: 20_000, maxParts: 64, maxRatio: 0, alone: []int64{4321}},
		{name: "int64 extremes", counts: extremes, partRows: 20_000, maxParts: 64,
			alone: []int64{math.MinInt64, -1, math.MaxInt64 - 1, math.MaxInt64}},
		{name: "int64 extremes, two parts", counts: extremes, partRows: 100_000, maxParts: 2, parts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMem(tt.counts, tt.distort)
			p, err := planParts(context.Background(), m, tt.partRows, tt.maxParts)
			if err != nil {
				t.Fatal(err)
			}
			rows := checkPlan(t, p, m, tt.maxParts)
			if tt.parts != 0 && len(p.Parts) != tt.parts {
				t.Errorf("%d parts, want %d: %v", len(p.Parts), tt.parts, p.Parts)
			}
			if len(p.Parts) == 1 && p.Parts[0] != (Bounds{}) {
				t.Errorf("one part %v, want Bounds{}", p.Parts[0])
			}
			if got := ratio(rows); tt.maxRatio > 0 && got > tt.maxRatio {
				t.Errorf("largest part / median part = %.2f, want <= %.2f; rows %v", got, tt.maxRatio, rows)
			}
			for _, k := range tt.alone {
				i := slices.IndexFunc(p.Parts, func(b Bounds) bool { return b.Contains(k) })
				b := p.Parts[i]
				if rows[i] != tt.counts[k] {
					t.Errorf("key %d is in part %v with %v rows, want a part of its own (%v rows)", k, b, rows[i], tt.counts[k])
				}
			}
			t.Logf("%d parts, %d dives, largest/median %.2f", len(p.Parts), m.dives, ratio(rows))
		})
	}
}

func TestPlanPartsEmpty(t *testing.T) {
	t.Parallel()
	m := newMem(nil, nil)
	m.total_ = 1e6 // stale statistics: an estimate, yet no key
	p, err := planParts(context.Background(), m, 1000, 64)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Plan{Parts: []Bounds{{}}, Estimated: []int64{1e6}, EstimatedRows: 1e6}, p); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}

func TestCalibrate(t *testing.T) {
	t.Parallel()
	// rows(j) is what the j-th halving holds: 1M rows, then half each time.
	rows := func(j int) float64 { return 1e6 / math.Pow(2, float64(j)) }
	tests := []struct {
		name  string
		est   func(rows float64) float64
		check func(threshold float64) bool
		want  string
	}{
		{"doubled past 7,000 rows", func(n float64) float64 {
			if n > 7000 {
				return min(2*n, 5e5)
			}
			return n
		}, func(th float64) bool { return th > 7000 && th < 2*7813 }, "between the largest exact and the smallest doubled estimate"},
		{"never doubled", func(n float64) float64 { return n }, func(th float64) bool { return math.IsInf(th, 1) }, "+Inf"},
		{"always doubled", func(n float64) float64 { return 2 * n }, func(th float64) bool { return math.IsInf(th, 1) }, "+Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			th, err := calibrate(func(j int) (float64, bool, error) { return tt.est(rows(j)), j < 40, nil })
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(th) {
				t.Errorf("threshold %v, want %s", th, tt.want)
			}
			// Undoubled, every estimate is the rows again.
			for j := range 30 {
				if got, want := undouble(min(tt.est(rows(j)), 5e5), th), rows(j); !math.IsInf(th, 1) && j > 1 && got != want {
					t.Errorf("undouble(estimate of %v rows) = %v", want, got)
				}
			}
		})
	}
}
