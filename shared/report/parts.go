package report

import (
	"encoding/json"
	"fmt"
)

// DescribeBounds names a part's key range as its messages carry it (JSON
// of Bounds) on report type reportType's join key, for a reason or a log
// line: "user_id [1000, 2000)", "all" for none.
func DescribeBounds(reportType string, raw json.RawMessage) string {
	col := "key"
	if r, ok := Lookup(reportType); ok && len(r.Stages) > 0 && len(r.Stages[0]) > 0 {
		col = r.Stages[0][0].Key
	}
	var b Bounds
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Sprintf("bounds %s", raw)
		}
	}
	return b.Describe(col)
}
