package report

import (
	"math/rand/v2"
	"testing"
	"time"
)

// appendTime writes what time.Format(TimeLayout) writes, for every date a
// DATETIME holds and for years it cannot.
func TestAppendTimeMatchesFormat(t *testing.T) {
	t.Parallel()
	times := []time.Time{
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 30, 45, 500, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 7, 1, 9, 8, 7, 0, time.FixedZone("x", 3600)).UTC(),
	}
	r := rand.New(rand.NewPCG(1, 2))
	lo, hi := times[0].Unix(), times[1].Unix()
	for range 100_000 {
		times = append(times, time.Unix(lo+r.Int64N(hi-lo), r.Int64N(1e9)).UTC())
	}
	for _, tm := range times {
		if got, want := string(appendTime([]byte("x"), tm)), "x"+tm.Format(TimeLayout); got != want {
			t.Fatalf("appendTime(%v) = %q, want %q", tm, got, want)
		}
	}
}
