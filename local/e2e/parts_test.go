package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/fanoutexport/fanoutexport/shared/output"
)

// partsEnv gives the shim tiny parts: the seed's 30-odd withdrawals in the
// report's range become many key-range parts, several users heavier than
// a part, and parts whose users have no requested tag (empty segments).
func partsEnv(partRows int) func(*env) map[string][]string {
	return func(*env) map[string][]string {
		return map[string][]string{"shim": {fmt.Sprintf("PART_ROWS=%d", partRows), "MAX_PARTS=200"}}
	}
}

// dispatchedParts reads the shim's log: the parts record id was split into.
func dispatchedParts(t *testing.T, e *env, id int64) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.logDir, "shim.log"))
	if err != nil {
		t.Fatal(err)
	}
	parts := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		var l struct {
			Message  string `json:"message"`
			RecordID int64  `json:"recordId"`
			Parts    int    `json:"parts"`
		}
		if json.Unmarshal(line, &l) == nil && l.RecordID == id && l.Message == "report dispatched" {
			parts = l.Parts
		}
	}
	return parts
}

// segmentsLeft lists the objects left under record id's temporary prefix.
func segmentsLeft(t *testing.T, e *env, id int64) []string {
	t.Helper()
	objs, _, err := e.stack.GCS.ListObjectsWithOptions("reports", fakestorage.ListOptions{Prefix: output.SegmentPrefix(id)})
	if err != nil {
		t.Fatalf("list segments of record %d: %v", id, err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	return names
}

// Every golden report split into many parts (one to three withdrawals
// each) is byte-identical to the golden CSV, which the single-part run and
// the reference query produce too (TestGoldenReports, local/seed): both
// report types, the header-only results, parts with no rows, users
// heavier than a part. No segment and no hash is left behind.
func TestGoldenReportsInManyParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{envFor: partsEnv(2)})
	ids := runGoldens(t, e)
	for i, g := range goldens {
		id := ids[i]
		if id == 0 {
			continue
		}
		if n := dispatchedParts(t, e, id); n < 4 {
			t.Errorf("%s: record %d dispatched in %d parts, want many (PART_ROWS=2)", g.file, id, n)
		}
		if left := segmentsLeft(t, e, id); len(left) > 0 {
			t.Errorf("%s: segments left after SUCCESS: %v", g.file, left)
		}
	}
}

// A duplicate of every message, every part's included, delivered at once:
// each part counts once, each part's stage is acted on once, one compose,
// one upload of the final object, one SUCCESS.
func TestManyPartsEveryMessageTwice(t *testing.T) {
	t.Parallel()
	var seen deliveries
	e := newEnv(t, options{duplicate: true, observe: seen.add, envFor: partsEnv(2)})
	e.keepVersions()
	ids := runGoldens(t, e)
	waitSettled(t, e, &seen, []string{"listen-user-tag-relation", "listen-withdraw", "listen-payment", "aggregate"})
	for i, g := range goldens {
		id := ids[i]
		if id == 0 {
			continue
		}
		if n := e.uploads(id); n != 1 {
			t.Errorf("%s: %d versions of record %d's object, want 1", g.file, n, id)
		}
		if n := countLogLines(t, e, "Aggregate", id, "report SUCCESS"); n != 1 {
			t.Errorf("%s: aggregator marked record %d SUCCESS %d times, want 1", g.file, id, n)
		}
		parts := dispatchedParts(t, e, id)
		if n := countLogLines(t, e, "Aggregate", id, "part's segment written"); n < parts {
			t.Errorf("%s: %d segment lines for %d parts", g.file, n, parts)
		}
		if left := segmentsLeft(t, e, id); len(left) > 0 {
			t.Errorf("%s: segments left after SUCCESS: %v", g.file, left)
		}
	}
}

