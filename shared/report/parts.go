package report

import (
	"encoding/json"
	"fmt"
)

// DescribeBounds names a part's key range, as its messages carry it
// (JSON of Bounds), for a reason or a log line: "user_id [1000, 2000)";
// "all" for none.
func DescribeBounds(raw json.RawMessage) string {
	var b Bounds
	if len(raw) == 0 {
		return b.String()
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Sprintf("bounds %s", raw)
	}
	return b.String()
}
