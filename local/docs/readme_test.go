package docs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the module's directory, seen from this package.
const root = "../.."

// scanned holds the code that can end a record FAILED: the functions, the
// domain, and the operator's command line (reportctl cancel).
var scanned = []string{"shared", "functions", "local/reportctl"}

// knownBlind lists the constructions the extractor cannot read, each with
// why its reasons are covered anyway. Key: file and expression, no line.
var knownBlind = map[string]string{
	"functions/aggregator/aggregator.go errors.New(m.Failure)": "a listener's own reason, passed on in its done message; the listener's reasons are extracted where they are born",
}

// TestReadmeListsEveryFailReason reads every reason a record can end
// FAILED with from the code and requires it in the README's table.
func TestReadmeListsEveryFailReason(t *testing.T) {
	t.Parallel()
	mod, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	reasons, blind, err := Extract(root, mod, scanned)
	if err != nil {
		t.Fatal(err)
	}
	// A floor, so a broken extractor cannot pass by finding nothing: the
	// DLQ, the params constructor, the row limit and the operator's
	// cancel are each found by a different rule.
	for _, want := range []string{"stage {} listener {} failed", "invalid params: {}",
		"report exceeds {} rows; narrow the filter", "cancelled by operator"} {
		if !hasKey(reasons, want) {
			t.Errorf("extractor did not find %q in the code; it is broken or the code changed", want)
		}
	}
	for _, b := range blind {
		if _, ok := knownBlind[blindKey(b)]; !ok {
			t.Errorf("%s: %s makes a FAILED reason the extractor cannot read: build it from a literal format, a constant or a sentinel, or add it to knownBlind saying where its text is checked", b.Pos, b.Expr)
		}
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := reasonTable(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Check(reasons, rows) {
		t.Error(p)
	}
}

func blindKey(b Blind) string {
	file, _, _ := strings.Cut(b.Pos, ":")
	return file + " " + b.Expr
}

func hasKey(rs []Reason, key string) bool {
	for _, r := range rs {
		if r.Key == key {
			return true
		}
	}
	return false
}

// Row is one row of the README's reason table.
type Row struct {
	Line                  int
	Reason, Means, Action string
}

const (
	beginMarker = "<!-- failed-reasons -->"
	endMarker   = "<!-- /failed-reasons -->"
)

// reasonTable parses the table between the markers: header, separator,
// then one row per reason with three non-empty cells.
func reasonTable(readme string) ([]Row, error) {
	start := strings.Index(readme, beginMarker)
	end := strings.Index(readme, endMarker)
	if start < 0 || end < start {
		return nil, fmt.Errorf("README.md has no %s … %s section", beginMarker, endMarker)
	}
	first := strings.Count(readme[:start], "\n") + 1
	var rows []Row
	sc := bufio.NewScanner(strings.NewReader(readme[start:end]))
	n := 0
	for i := 0; sc.Scan(); i++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			continue
		}
		n++
		if n <= 2 { // header and separator
			continue
		}
		cells := splitRow(line)
		if len(cells) != 3 || cells[0] == "" || cells[1] == "" || cells[2] == "" {
			return nil, fmt.Errorf("README.md:%d: want three non-empty cells (reason | what it means | what to do), got %q", first+i, line)
		}
		rows = append(rows, Row{Line: first + i, Reason: cells[0], Means: cells[1], Action: cells[2]})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("README.md: the %s section has no table rows", beginMarker)
	}
	return rows, nil
}

func splitRow(line string) []string {
	line = strings.ReplaceAll(line, `\|`, "\x00")
	parts := strings.Split(strings.Trim(line, "|"), "|")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(strings.ReplaceAll(p, "\x00", "|"))
	}
	return parts
}

// Check returns a problem for every reason no row's first cell shows and
// for every row that shows no reason the code has.
func Check(reasons []Reason, rows []Row) []string {
	var problems []string
	used := make([]bool, len(rows))
	reported := map[string]bool{}
	for _, r := range reasons {
		re := keyPattern(r.Key)
		found := false
		for i, row := range rows {
			if re.MatchString(cellText(row.Reason)) {
				found, used[i] = true, true
			}
		}
		if !found && !reported[r.Key] {
			reported[r.Key] = true
			problems = append(problems, fmt.Sprintf("README.md troubleshooting table lacks the FAILED reason %q (built at %s as %q): add a row whose first cell shows it, with {…} for the variable parts", r.Key, r.Pos, r.Format))
		}
	}
	for i, row := range rows {
		if !used[i] {
			problems = append(problems, fmt.Sprintf("README.md:%d: row %q matches no FAILED reason the code can produce: update or remove it", row.Line, row.Reason))
		}
	}
	return problems
}

// cellText is a cell as a reader sees it: no backticks, spaces collapsed.
func cellText(cell string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(cell, "`", "")), " ")
}

// keyPattern matches a key anywhere in a cell, each "{}" matching a
// placeholder such as {source} (quoted or not).
func keyPattern(key string) *regexp.Regexp {
	parts := strings.Split(key, "{}")
	for i, p := range parts {
		parts[i] = spaces.ReplaceAllString(regexp.QuoteMeta(p), `\s+`)
	}
	return regexp.MustCompile(strings.Join(parts, `"?\{[^{}]*\}"?`))
}

var spaces = regexp.MustCompile(`\s+`)

// modulePath reads the module line of go.mod.
func modulePath(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("%s has no module line", gomod)
}
