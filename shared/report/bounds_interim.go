package report

// INTERIM: the split engineer's shared/report/split.go defines Bounds,
// Plan and Split (see the agreed interface). This file holds the same
// declarations until that branch is merged, and is deleted by the merge.

import (
	"context"
	"database/sql"
	"fmt"
)

// Bounds is one part's slice of a report's join-key space: keys k with Lo <= k < Hi.
// A nil end is unbounded. The zero Bounds is the whole key space (a one-part report).
type Bounds struct {
	Lo *int64 `json:"lo,omitempty"`
	Hi *int64 `json:"hi,omitempty"`
}

// Contains reports whether key k is in b.
func (b Bounds) Contains(k int64) bool {
	return (b.Lo == nil || k >= *b.Lo) && (b.Hi == nil || k < *b.Hi)
}

// String names b for reasons and logs.
func (b Bounds) String() string {
	switch {
	case b.Lo == nil && b.Hi == nil:
		return "all"
	case b.Lo == nil:
		return fmt.Sprintf("user_id < %d", *b.Hi)
	case b.Hi == nil:
		return fmt.Sprintf("user_id >= %d", *b.Lo)
	}
	return fmt.Sprintf("user_id [%d, %d)", *b.Lo, *b.Hi)
}

// Predicate returns the SQL condition on column col for these bounds and its bound args.
func (b Bounds) Predicate(col string) (string, []any) {
	switch {
	case b.Lo == nil && b.Hi == nil:
		return "", nil
	case b.Lo == nil:
		return "`" + col + "` < ?", []any{*b.Hi}
	case b.Hi == nil:
		return "`" + col + "` >= ?", []any{*b.Lo}
	}
	return "`" + col + "` >= ? AND `" + col + "` < ?", []any{*b.Lo, *b.Hi}
}

// Plan is a report's split.
type Plan struct {
	Parts         []Bounds
	Estimated     []int64
	EstimatedRows int64
}

// Split plans report r: interim, always one part.
func Split(ctx context.Context, r Report, p Params, dbFor func(database string) (*sql.DB, error), partRows int64, maxParts int) (Plan, error) {
	return Plan{Parts: []Bounds{{}}, Estimated: []int64{0}}, nil
}
