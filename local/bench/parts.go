package bench

import (
	"sort"
	"strconv"
	"strings"

	"github.com/fanoutexport/fanoutexport/local/relay"
)

// PartSizes is how a report was split into parts and the rows of each.
type PartSizes struct {
	Parts int `json:"parts"`
	// Source is whose rows Rows counts: the listener that fetched the
	// most (the report's driving source), or "report" for a one-part
	// report (its row count).
	Source string  `json:"source,omitempty"`
	Rows   []int64 `json:"rows,omitempty"` // by part; empty when the logs do not say
	// MaxOverMedian is the largest part over the median part.
	MaxOverMedian float64 `json:"maxOverMedian,omitempty"`
}

// partAttr is the messages' part attribute ("{part}/{parts}", from 0).
const partAttr = "part"

// parsePart reads a part index from a message attribute or a log field:
// "3/8", "3" or a JSON number.
func parsePart(v any) (part, parts int, ok bool) {
	switch v := v.(type) {
	case float64:
		return int(v), 0, true
	case string:
		i, n, slash := strings.Cut(v, "/")
		p, err := strconv.Atoi(i)
		if err != nil {
			return 0, 0, false
		}
		if slash {
			if parts, err = strconv.Atoi(n); err != nil {
				return 0, 0, false
			}
		}
		return p, parts, true
	}
	return 0, 0, false
}

func asInt(v any) (int64, bool) {
	switch v := v.(type) {
	case float64:
		return int64(v), true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// partsOf reads a report's split: the part count from its messages' part
// attribute (none: one part), each part's rows from the listeners' log
// lines that carry a part and a rows field (the last line of a part wins:
// a redelivery fetches the same rows again). A one-part report's size is
// its row count.
func partsOf(timeline []Event, pushes []relay.Delivery, rowCount int64) PartSizes {
	ps := PartSizes{Parts: 1}
	for _, d := range pushes {
		if _, n, ok := parsePart(d.Attributes[partAttr]); ok {
			ps.Parts = max(ps.Parts, n)
		}
	}
	if ps.Parts == 1 {
		ps.Source, ps.Rows, ps.MaxOverMedian = "report", []int64{rowCount}, 1
		return ps
	}
	bySource := map[string]map[int]int64{}
	for _, e := range timeline {
		if e.Part == nil || e.Rows == nil || !strings.HasPrefix(e.Process, "Listen") {
			continue
		}
		p, _, ok := parsePart(e.Part)
		rows, rok := asInt(e.Rows)
		if !ok || !rok || p < 0 || p >= ps.Parts {
			continue
		}
		if bySource[e.Source] == nil {
			bySource[e.Source] = map[int]int64{}
		}
		bySource[e.Source][p] = rows
	}
	var best string
	var bestRows int64
	for src, parts := range bySource {
		var sum int64
		for _, r := range parts {
			sum += r
		}
		if sum > bestRows || (sum == bestRows && src < best) {
			best, bestRows = src, sum
		}
	}
	if best == "" {
		return ps
	}
	ps.Source = best
	ps.Rows = make([]int64, ps.Parts)
	for p, r := range bySource[best] {
		ps.Rows[p] = r
	}
	ps.MaxOverMedian = maxOverMedian(ps.Rows)
	return ps
}

// maxOverMedian is the largest value over the median (the lower middle
// of an even count); 0 when the median is 0.
func maxOverMedian(rows []int64) float64 {
	if len(rows) == 0 {
		return 0
	}
	s := append([]int64(nil), rows...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	med := s[(len(s)-1)/2]
	if med == 0 {
		return 0
	}
	return float64(s[len(s)-1]) / float64(med)
}
