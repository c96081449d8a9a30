// Package docs writes the README's generated tables: the troubleshooting
// table from the registry of FAILED reasons (shared/failreason), between
// the failed-reasons markers, and the source tables' indexes from the
// report definitions (shared/report), between the source-indexes markers;
// a test fails when the committed README differs.
package docs

//go:generate go run ./internal/gen ../../README.md

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/report"
)

const (
	beginMarker = "<!-- failed-reasons -->"
	endMarker   = "<!-- /failed-reasons -->"
)

// ReasonTable is the Markdown table of every reason in failreason.All.
func ReasonTable() string {
	var b strings.Builder
	b.WriteString("| reason, as it starts | what it means | what to do |\n|---|---|---|\n")
	for _, r := range failreason.All {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r.Shown, r.Means, r.Do)
	}
	return b.String()
}

// WithReasonTable returns readme with the text between the markers
// replaced by ReasonTable.
func WithReasonTable(readme string) (string, error) {
	return replaceBetween(readme, beginMarker, endMarker, ReasonTable())
}

const (
	indexBegin = "<!-- source-indexes -->"
	indexEnd   = "<!-- /source-indexes -->"
)

// ddlKey is a secondary index line of a source's CREATE TABLE.
var ddlKey = regexp.MustCompile(`(?m)^\s*KEY\s+(\w+)\s+(\(.*\))\s*,?\s*$`)

// IndexTable is the Markdown table of every secondary index the sources'
// queries need, by table: the KEY lines of each table's DDL and each
// source's Indexes, with the functions that read the table.
func IndexTable() string {
	type index struct{ name, cols string }
	type table struct {
		indexes []index
		readers []string
	}
	tables := map[string]*table{}
	var names []string
	for _, db := range report.Databases() {
		for _, s := range report.SourcesIn(db) {
			t, ok := tables[s.Name()]
			if !ok {
				t = &table{}
				tables[s.Name()] = t
				names = append(names, s.Name())
			}
			t.readers = append(t.readers, "`"+s.EntryPoint+"`")
			add := func(x index) {
				if !slices.Contains(t.indexes, x) {
					t.indexes = append(t.indexes, x)
				}
			}
			for _, m := range ddlKey.FindAllStringSubmatch(s.DDL, -1) {
				add(index{m[1], m[2]})
			}
			for _, x := range s.Indexes {
				add(index{x.Name, x.Columns})
			}
		}
	}
	var b strings.Builder
	b.WriteString("| table | index | columns | read by |\n|---|---|---|---|\n")
	for _, n := range names {
		t := tables[n]
		for _, x := range t.indexes {
			fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s |\n", n, x.name, x.cols, strings.Join(t.readers, ", "))
		}
	}
	return b.String()
}

// WithIndexTable returns readme with the text between the source-indexes
// markers replaced by IndexTable.
func WithIndexTable(readme string) (string, error) {
	return replaceBetween(readme, indexBegin, indexEnd, IndexTable())
}

func replaceBetween(readme, begin, end, table string) (string, error) {
	start := strings.Index(readme, begin)
	stop := strings.Index(readme, end)
	if start < 0 || stop < start {
		return "", fmt.Errorf("README has no %s … %s section", begin, end)
	}
	return readme[:start] + begin + "\n" + table + readme[stop:], nil
}

// WithTables is readme with every generated table current.
func WithTables(readme string) (string, error) {
	out, err := WithReasonTable(readme)
	if err != nil {
		return "", err
	}
	return WithIndexTable(out)
}

// WriteREADME rewrites the tables in the README at path.
func WriteREADME(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := WithTables(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if out == string(b) {
		return nil
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
