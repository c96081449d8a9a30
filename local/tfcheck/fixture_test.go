package tfcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A fixture in testdata/broken/<case>/ is the module with a few small
// changes (testdata/broken/README.md): edits.txt says which lines of which
// module files change, and any .tf file of the directory is added whole.
// Applying the fixtures to a copy of terraform/ at test time keeps each to
// its own change: the rest of the copy is always the current module. All
// of them go into one copy, planned once (a plan costs seconds), so each
// breaks a different function or resource and names it in its want.txt.

const editsFile = "edits.txt"

// fixtureEdit replaces the lines old, which must occur exactly once in
// file, with the lines new.
type fixtureEdit struct {
	file     string // a file of terraform/, by name
	line     int    // line of its "edit" header in edits.txt
	old, new []string
}

// parseEdits reads edits.txt:
//
//	# comment
//	edit locals.tf
//	 a context line (old and new)
//	-an old line
//	+a new line
//
// A snippet line is its first character (' ', '-' or '+') and the exact
// text after it. An empty line inside an edit is an empty context line;
// empty lines at the end of an edit only separate it from the next.
func parseEdits(name, src string) ([]fixtureEdit, error) {
	var (
		out   []fixtureEdit
		cur   *fixtureEdit
		blank int // empty lines not yet known to be inside cur
	)
	finish := func() error {
		if cur == nil {
			return nil
		}
		e := *cur
		cur, blank = nil, 0
		switch {
		case len(e.old) == 0:
			return fmt.Errorf("%s:%d: edit of %s has no old or context line to find its place", name, e.line, e.file)
		case slices.Equal(e.old, e.new):
			return fmt.Errorf("%s:%d: edit of %s changes nothing", name, e.line, e.file)
		}
		out = append(out, e)
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(src, "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		switch {
		case line == "":
			if cur != nil {
				blank++
			}
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "edit "):
			if err := finish(); err != nil {
				return nil, err
			}
			file := strings.TrimSpace(strings.TrimPrefix(line, "edit "))
			if file != filepath.Base(file) || !strings.HasSuffix(file, ".tf") {
				return nil, fmt.Errorf("%s:%d: %q is not the name of a .tf file of the module", name, n, file)
			}
			cur = &fixtureEdit{file: file, line: n}
		case line[0] == ' ' || line[0] == '-' || line[0] == '+':
			if cur == nil {
				return nil, fmt.Errorf("%s:%d: snippet line before the first \"edit FILE\" line", name, n)
			}
			for ; blank > 0; blank-- {
				cur.old, cur.new = append(cur.old, ""), append(cur.new, "")
			}
			text := line[1:]
			switch line[0] {
			case ' ':
				cur.old, cur.new = append(cur.old, text), append(cur.new, text)
			case '-':
				cur.old = append(cur.old, text)
			case '+':
				cur.new = append(cur.new, text)
			}
		default:
			return nil, fmt.Errorf("%s:%d: want \"edit FILE\", \" context\", \"-old\", \"+new\" or \"# comment\", got %q", name, n, line)
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no edits", name)
	}
	return out, nil
}

// errDrift marks an edit whose old lines are not exactly once in the
// module: the module changed under the fixture.
var errDrift = errors.New("the module changed under this fixture: update its edits.txt")

// apply returns src with e made. Lines are compared whole and exactly.
func (e fixtureEdit) apply(name, src string) (string, error) {
	lines := strings.Split(src, "\n")
	var at []int
	for i := 0; i+len(e.old) <= len(lines); i++ {
		if slices.Equal(lines[i:i+len(e.old)], e.old) {
			at = append(at, i+1)
		}
	}
	if len(at) != 1 {
		where := "are not"
		if len(at) > 1 {
			where = fmt.Sprintf("occur %d times (lines %v)", len(at), at)
		}
		return "", fmt.Errorf("%s:%d: its old lines %s in terraform/%s, want exactly once: %w\nold lines:\n%s",
			name, e.line, where, e.file, errDrift, indent(e.old))
	}
	i := at[0] - 1
	out := append(slices.Clip(lines[:i]), e.new...)
	out = append(out, lines[i+len(e.old):]...)
	return strings.Join(out, "\n"), nil
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\t| " + l + "\n")
	}
	return b.String()
}

// fixture is one directory of testdata/broken.
type fixture struct {
	name string
	want []wantLine
}

type wantLine struct{ rule, msg string }

// applyFixtures applies every fixture of dir, in name order, to the module
// copy at dst (a copy of module): each one's edits.txt made on the copy as
// the earlier fixtures left it, its own .tf files added. Fixtures may not
// edit the same lines: an edit whose old lines are in the module but no
// longer in the copy conflicts with an earlier fixture. A fixture .tf file
// may not replace a module file: that copy would go stale silently.
func applyFixtures(module, dir, dst string) ([]fixture, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []fixture
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		fdir := filepath.Join(dir, e.Name())
		want, err := readWant(filepath.Join(fdir, "want.txt"))
		if err != nil {
			return nil, err
		}
		changed := false
		files, err := os.ReadDir(fdir)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if f.IsDir() || !strings.HasSuffix(f.Name(), ".tf") {
				continue
			}
			if _, err := os.Stat(filepath.Join(dst, f.Name())); err == nil {
				return nil, fmt.Errorf("%s replaces terraform/%s wholesale: describe the change in %s instead", filepath.Join(fdir, f.Name()), f.Name(), editsFile)
			}
			b, err := os.ReadFile(filepath.Join(fdir, f.Name()))
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(dst, f.Name()), b, 0o644); err != nil {
				return nil, err
			}
			changed = true
		}

		name := filepath.Join(fdir, editsFile)
		src, err := os.ReadFile(name)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			edits, err := parseEdits(name, string(src))
			if err != nil {
				return nil, err
			}
			for _, ed := range edits {
				pristine, err := os.ReadFile(filepath.Join(module, ed.file))
				if errors.Is(err, os.ErrNotExist) {
					return nil, fmt.Errorf("%s:%d: terraform/%s does not exist: %w", name, ed.line, ed.file, errDrift)
				}
				if err != nil {
					return nil, err
				}
				if _, err := ed.apply(name, string(pristine)); err != nil {
					return nil, err
				}
				cur, err := os.ReadFile(filepath.Join(dst, ed.file))
				if err != nil {
					return nil, err
				}
				next, err := ed.apply(name, string(cur))
				if err != nil {
					return nil, fmt.Errorf("%s conflicts with an earlier fixture (it edits the same lines): %w", e.Name(), err)
				}
				if err := os.WriteFile(filepath.Join(dst, ed.file), []byte(next), 0o644); err != nil {
					return nil, err
				}
			}
			changed = true
		}
		if !changed {
			return nil, fmt.Errorf("%s changes nothing: it needs %s or a .tf file of its own", fdir, editsFile)
		}
		out = append(out, fixture{name: e.Name(), want: want})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no fixtures in %s", dir)
	}
	return out, nil
}

// readWant reads "rule: message substring" lines; # starts a comment.
func readWant(file string) ([]wantLine, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []wantLine
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rule, msg, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not \"rule: message\"", file, line)
		}
		out = append(out, wantLine{strings.TrimSpace(rule), strings.TrimSpace(msg)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names no failure", file)
	}
	return out, nil
}

func TestParseEdits(t *testing.T) {
	t.Parallel()
	src := `# Two edits; comments and empty lines between them are ignored.
edit locals.tf
 a = {
-  x = 1
+  x = 2

   y = 3
 }

edit redis.tf
-  gone = true
-
`
	got, err := parseEdits("edits.txt", src)
	if err != nil {
		t.Fatal(err)
	}
	want := []fixtureEdit{
		{file: "locals.tf", line: 2, old: []string{"a = {", "  x = 1", "", "  y = 3", "}"}, new: []string{"a = {", "  x = 2", "", "  y = 3", "}"}},
		{file: "redis.tf", line: 10, old: []string{"  gone = true", ""}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(fixtureEdit{})); diff != "" {
		t.Errorf("parseEdits (-want +got):\n%s", diff)
	}

	for _, tc := range []struct{ name, src, err string }{
		{"no edits", "# only a comment\n", "no edits"},
		{"snippet first", "-x\n", "before the first"},
		{"bad line", "edit a.tf\n-x\nx\n", "want \"edit FILE\""},
		{"path", "edit ../a.tf\n-x\n", "not the name of a .tf file"},
		{"no anchor", "edit a.tf\n+x\n", "no old or context line"},
		{"no change", "edit a.tf\n x\n", "changes nothing"},
	} {
		if _, err := parseEdits("edits.txt", tc.src); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: parseEdits error %v, want one containing %q", tc.name, err, tc.err)
		}
	}
}

func TestApplyEdit(t *testing.T) {
	t.Parallel()
	e := fixtureEdit{file: "a.tf", line: 1, old: []string{"  x = 1"}, new: []string{"  x = 2", "  z = 3"}}
	got, err := e.apply("edits.txt", "a {\n  x = 1\n  x = 10\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "a {\n  x = 2\n  z = 3\n  x = 10\n}\n"; got != want {
		t.Errorf("apply = %q, want %q", got, want)
	}
	// Drift: the old lines must be there exactly once, whole lines.
	for _, src := range []string{"a {\n  x = 10\n}\n", "a {\n  x = 1\n}\nb {\n  x = 1\n}\n"} {
		if _, err := e.apply("edits.txt", src); !errors.Is(err, errDrift) {
			t.Errorf("apply on %q: error %v, want drift", src, err)
		}
	}
}
