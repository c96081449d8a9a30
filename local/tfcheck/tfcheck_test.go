package tfcheck

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	fanoutexport "github.com/fanoutexport/fanoutexport"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

const (
	moduleDir   = "../../terraform"
	repoRoot    = "../.."
	fixturesDir = "testdata/broken"
)

// expect builds what the module must deploy from the code itself.
func expect(t *testing.T) Expect {
	t.Helper()
	fns := topology.Functions()
	e := Expect{
		EntryPoints: fanoutexport.EntryPoints(),
		Functions:   fns,
		Topics:      topology.Topics(),
		GoRuntime:   goRuntime(t, filepath.Join(repoRoot, "go.mod")),
		Env:         map[string]EnvRule{},
		Secret: func(name string) bool {
			switch name {
			case "REDIS_PASSWORD", "REDIS_CA_CERT", "RECORD_DSN", "AMQP_URL":
				return true
			}
			return strings.HasPrefix(name, "DSN_")
		},
	}
	for _, f := range fns {
		r := EnvRule{
			Plain:  map[string]string{"GOOGLE_CLOUD_PROJECT": "", "REDIS_ADDR": "", "REDIS_TLS": "true"},
			Secret: []string{"REDIS_PASSWORD", "REDIS_CA_CERT"},
		}
		switch f.EntryPoint {
		case topology.EntryDrainTriggers:
			r.Known = envNames(config.Shim{})
			r.Secret = append(r.Secret, "RECORD_DSN", "AMQP_URL")
			r.Plain["DRAIN_FOR"] = ""
			r.TimeoutBelow = "DRAIN_FOR"
		case topology.EntryAggregate:
			r.Known = envNames(config.Aggregator{})
			r.Secret = append(r.Secret, "RECORD_DSN")
			r.Plain["REPORT_BUCKET"] = ""
			r.TimeoutEqual = "CLAIM_TTL"
		case topology.EntryDeadLetter:
			r.Known = envNames(config.DeadLetter{})
			r.Secret = append(r.Secret, "RECORD_DSN")
		default:
			src, ok := report.SourceByEntryPoint(f.EntryPoint)
			if !ok {
				t.Fatalf("no source for listener %s", f.EntryPoint)
			}
			dsn := report.DSNEnv(src.Database)
			r.Known = append(envNames(config.Listener{}), dsn)
			r.Secret = append(r.Secret, dsn)
		}
		e.Env[f.EntryPoint] = r
	}
	return e
}

// envNames lists the environment variables a config struct reads, from its
// envconfig tags.
func envNames(cfg any) []string {
	var names []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if tag, ok := f.Tag.Lookup("env"); ok {
				names = append(names, strings.TrimSpace(strings.Split(tag, ",")[0]))
				continue
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(cfg))
	return names
}

// goRuntime is the Cloud Functions runtime for go.mod's go directive:
// "go 1.26.8" is go126.
func goRuntime(t *testing.T, gomod string) string {
	t.Helper()
	src, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "go" {
			v := strings.Split(fields[1], ".")
			if len(v) < 2 {
				t.Fatalf("go.mod: go directive %q has no minor version", fields[1])
			}
			return "go" + v[0] + v[1]
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

func TestGoRuntime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gomod := filepath.Join(dir, "go.mod")
	if err := os.WriteFile(gomod, []byte("module x\n\ngo 1.26.8\n\ntoolchain go1.26.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := goRuntime(t, gomod); got != "go126" {
		t.Errorf("goRuntime = %q, want go126", got)
	}
}

func load(t *testing.T, dir string) *Module {
	t.Helper()
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestModulePassesTheChecks is the check itself, on terraform/.
func TestModulePassesTheChecks(t *testing.T) {
	t.Parallel()
	e := expect(t)
	m := load(t, moduleDir)
	for _, p := range Check(m, e) {
		t.Errorf("%s", p)
	}

	// The check must have seen what it checks: a module it cannot read
	// would pass vacuously.
	if got, want := len(m.Of("google_cloudfunctions2_function")), len(e.EntryPoints); got != want {
		t.Errorf("%d function instances, want one per registered entry point (%d)", got, want)
	}
	push := 0
	for _, f := range e.Functions {
		if f.Kind == topology.KindPush {
			push++
		}
	}
	if got := len(m.Of("google_pubsub_subscription")); got != push+1 {
		t.Errorf("%d subscriptions, want %d push subscriptions and the parking hold", got, push)
	}
}

// TestFormat: every .tf file is what hclwrite.Format (terraform fmt's
// formatter) makes of it.
func TestFormat(t *testing.T) {
	t.Parallel()
	problems, err := CheckFormat(moduleDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s", p)
	}
}

// TestTerraformFmt runs the real formatter where it is installed, on the
// module and on the module with the unformatted fixture applied (which it
// must reject too, so both formatters agree on what the fixture proves).
func TestTerraformFmt(t *testing.T) {
	t.Parallel()
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not on PATH: hclwrite.Format (TestFormat) is the formatting check")
	}
	run := func(dir string) error {
		cmd := exec.Command(tf, "fmt", "-check", "-recursive", "-diff", ".")
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err != nil {
			t.Logf("terraform fmt in %s:\n%s", dir, out.String())
		}
		return err
	}
	if err := run(moduleDir); err != nil {
		t.Errorf("terraform fmt -check %s: %v", moduleDir, err)
	}
	var exit *exec.ExitError
	if err := run(fixtureModule(t, filepath.Join(fixturesDir, "unformatted"))); !errors.As(err, &exit) {
		t.Errorf("terraform fmt -check accepted the unformatted fixture (err %v)", err)
	}
}

// TestBrokenCopiesFail applies each fixture to a fresh copy of the module
// (fixture_test.go). Each must fail exactly the rules its want.txt names,
// with the messages it names, and nothing else: a fixture that fails for
// another reason proves nothing about its own. A fixture whose edits no
// longer find their lines in the module fails before the check runs.
func TestBrokenCopiesFail(t *testing.T) {
	t.Parallel()
	e := expect(t)
	cases, err := os.ReadDir(fixturesDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no fixtures")
	}
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		name := c.Name()
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := filepath.Join(fixturesDir, name)
			want := readWant(t, filepath.Join(src, "want.txt"))
			dir := fixtureModule(t, src)

			m := load(t, dir)
			problems := Check(m, e)
			fmtProblems, err := CheckFormat(dir)
			if err != nil {
				t.Fatal(err)
			}
			problems = append(problems, fmtProblems...)

			gotRules := map[string]bool{}
			for _, p := range problems {
				gotRules[p.Rule] = true
			}
			wantRules := map[string]bool{}
			for _, w := range want {
				wantRules[w.rule] = true
			}
			if diff := cmp.Diff(sortedKeys(wantRules), sortedKeys(gotRules)); diff != "" {
				t.Errorf("failed rules (-want +got):\n%s\nproblems:\n%s", diff, list(problems))
			}
			for _, w := range want {
				found := false
				for _, p := range problems {
					found = found || (p.Rule == w.rule && strings.Contains(p.Msg, w.msg))
				}
				if !found {
					t.Errorf("no %s problem containing %q; problems:\n%s", w.rule, w.msg, list(problems))
				}
			}
		})
	}
}

type wantLine struct{ rule, msg string }

// readWant reads "rule: message substring" lines; # starts a comment.
func readWant(t *testing.T, file string) []wantLine {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []wantLine
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rule, msg, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: %q is not \"rule: message\"", file, line)
		}
		out = append(out, wantLine{strings.TrimSpace(rule), strings.TrimSpace(msg)})
	}
	if len(out) == 0 {
		t.Fatalf("%s names no failure", file)
	}
	return out
}

func list(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

// TestSourceArchive: the archive Terraform zips from the repository holds
// every file the root package's build needs and nothing of terraform/,
// local/ or the tests. The excludes are read from the module and matched
// the way the archive provider does (doublestar globs on the relative path,
// a matching directory is skipped whole).
func TestSourceArchive(t *testing.T) {
	t.Parallel()
	m := load(t, moduleDir)
	ex, ok := m.Local("source_excludes")
	if !ok {
		t.Fatal("terraform/source.tf has no local.source_excludes")
	}
	ex, known := Known(ex)
	if !known || !ex.CanIterateElements() {
		t.Fatal("local.source_excludes is not a known list")
	}
	var excludes []string
	for it := ex.ElementIterator(); it.Next(); {
		_, v := it.Element()
		excludes = append(excludes, v.AsString())
	}

	var dir string
	for _, in := range m.Resources {
		if in.Mode == "data" && in.Type == "archive_file" {
			v, _ := in.Instances[0].Body().Eval("source_dir")
			dir, _ = String(v)
		}
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if abs, _ := filepath.Abs(dir); abs != root {
		t.Fatalf("archive_file source_dir = %q, want the repository root %q", dir, root)
	}

	included := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if excluded(rel, excludes) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			included[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for f := range included {
		switch {
		case strings.HasSuffix(f, "_test.go"):
			t.Errorf("archive includes test file %s", f)
		case strings.HasPrefix(f, "terraform/"), strings.HasPrefix(f, "local/"), strings.HasPrefix(f, ".git/"):
			t.Errorf("archive includes %s", f)
		}
	}
	for _, f := range []string{"go.mod", "go.sum", "register.go"} {
		if !included[f] {
			t.Errorf("archive lacks %s", f)
		}
	}

	// Every source file of every package of this module that the root
	// package imports must be in the archive.
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.Dir}}\t{{join .GoFiles \" \"}} {{join .CgoFiles \" \"}} {{join .EmbedFiles \" \"}}", ".")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkgDir, files, _ := strings.Cut(line, "\t")
		rel, err := filepath.Rel(root, pkgDir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // standard library or a dependency module
		}
		pkgs++
		for _, f := range strings.Fields(files) {
			if p := path.Join(filepath.ToSlash(rel), f); !included[p] {
				t.Errorf("archive lacks %s, which the root package's build needs", p)
			}
		}
	}
	if pkgs == 0 {
		t.Error("go list found no package of this module")
	}
}

// excluded matches rel against doublestar patterns: "**" spans any number
// of path segments, other segments match as path.Match.
func excluded(rel string, patterns []string) bool {
	for _, p := range patterns {
		if globMatch(strings.Split(p, "/"), strings.Split(rel, "/")) {
			return true
		}
	}
	return false
}

func globMatch(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if globMatch(pat[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], name[0])
	return err == nil && ok && globMatch(pat[1:], name[1:])
}

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"**/*_test.go", "x_test.go", true},
		{"**/*_test.go", "shared/report/report_test.go", true},
		{"**/*_test.go", "shared/report/report.go", false},
		{"**/testdata", "local/seed/testdata", true},
		{"local", "local", true},
		{"local", "shared/local", false},
		{".git", ".gitignore", false},
	}
	for _, tc := range tests {
		if got := excluded(tc.name, []string{tc.pattern}); got != tc.want {
			t.Errorf("excluded(%q, %q) = %v, want %v", tc.name, tc.pattern, got, tc.want)
		}
	}
}

// TestExpectComesFromCode guards the expectations themselves.
func TestExpectComesFromCode(t *testing.T) {
	t.Parallel()
	e := expect(t)
	var eps []string
	for _, f := range e.Functions {
		eps = append(eps, f.EntryPoint)
	}
	got := append([]string(nil), e.EntryPoints...)
	sort.Strings(got)
	sort.Strings(eps)
	if diff := cmp.Diff(eps, got); diff != "" {
		t.Errorf("registered entry points differ from topology.Functions() (-functions +registered):\n%s", diff)
	}
	for ep, r := range e.Env {
		known := map[string]bool{}
		for _, k := range r.Known {
			known[k] = true
		}
		for k := range r.Plain {
			if !known[k] {
				t.Errorf("%s: required %s is not read by its config", ep, k)
			}
		}
		for _, k := range r.Secret {
			if !known[k] {
				t.Errorf("%s: required secret %s is not read by its config", ep, k)
			}
		}
	}
}

// TestExampleVariables: terraform.tfvars.example sets every variable that
// has no default, and only declared variables.
func TestExampleVariables(t *testing.T) {
	t.Parallel()
	declared := map[string]bool{}
	required := map[string]bool{}
	m := load(t, moduleDir)
	for name, v := range m.vars {
		declared[name] = true
		if !v.IsKnown() {
			required[name] = true
		}
	}
	f, diags := hclparse.NewParser().ParseHCLFile(filepath.Join(moduleDir, "terraform.tfvars.example"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for name := range attrs {
		if !declared[name] {
			t.Errorf("terraform.tfvars.example sets %s, which variables.tf does not declare", name)
		}
		delete(required, name)
	}
	for _, name := range sortedKeys(required) {
		t.Errorf("terraform.tfvars.example does not set %s, which has no default", name)
	}
	if len(declared) == 0 {
		t.Error("no variables declared")
	}
}

// TestVariablesAndOutputsAreDescribed: every variable and output says what
// it is for.
func TestVariablesAndOutputsAreDescribed(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(moduleDir)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".tf") {
			continue
		}
		f, diags := hclparse.NewParser().ParseHCLFile(filepath.Join(moduleDir, e.Name()))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			if b.Type != "variable" && b.Type != "output" {
				continue
			}
			seen++
			a, ok := b.Body.Attributes["description"]
			if !ok {
				t.Errorf("%s %s has no description", b.Type, b.Labels[0])
				continue
			}
			if v, diags := a.Expr.Value(nil); diags.HasErrors() || strings.TrimSpace(v.AsString()) == "" {
				t.Errorf("%s %s has an empty description", b.Type, b.Labels[0])
			}
		}
	}
	if seen == 0 {
		t.Error("no variables or outputs found")
	}
}
