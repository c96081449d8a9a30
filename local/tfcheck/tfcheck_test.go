package tfcheck

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	fanoutexport "github.com/fanoutexport/fanoutexport"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

const (
	repoRoot    = "../.."
	moduleDir   = "../../terraform"
	fixturesDir = "testdata/broken"
	// The run whose plan the checks read: the module with its defaults.
	planFile = "tests/defaults.tftest.hcl"
	planRun  = "defaults"
)

// expect builds what the module must deploy from the code itself.
func expect(t *testing.T) Expect {
	t.Helper()
	fns := topology.Functions()
	e := Expect{
		EntryPoints: fanoutexport.EntryPoints(),
		Env:         map[string]EnvRule{},
		Secret: func(name, value string) bool {
			switch {
			case name == "REDIS_PASSWORD", name == "REDIS_CA_CERT", name == "AMQP_URL":
				return true
			case name == "RECORD_DSN", strings.HasPrefix(name, "DSN_"):
				// A Cloud SQL DSN holds no password (IAM database
				// authentication): it may be plain, if the code accepts it.
				c, err := mysql.ParseDSN(value)
				return err != nil || c.Net != config.CloudSQLNet || c.Passwd != "" || config.CheckDSN(name, value) != nil
			}
			return false
		},
	}
	for _, f := range fns {
		r := EnvRule{
			Plain:  map[string]string{"GOOGLE_CLOUD_PROJECT": "", "REDIS_ADDR": "", "REDIS_TLS": "true"},
			Secret: []string{"REDIS_PASSWORD", "REDIS_CA_CERT"},
		}
		switch f.EntryPoint {
		case topology.EntryDrainTriggers:
			// DrainTriggers splits reports into parts from estimates of
			// their SplitBy sources' databases (trigger.Planner reads
			// DSN_{DATABASE} of each): it needs exactly those DSNs.
			splitDSNs := splitDatabaseDSNs()
			r.Known = append(envNames(config.DrainTriggers{}), splitDSNs...)
			r.Secret = append(r.Secret, "RECORD_DSN", "AMQP_URL")
			r.Secret = append(r.Secret, splitDSNs...)
			r.Plain["DRAIN_FOR"] = ""
			r.Plain["PART_ROWS"] = ""
			r.Plain["MAX_PARTS"] = ""
			r.TimeoutBelow = "DRAIN_FOR"
		case topology.EntryAggregate:
			r.Known = envNames(config.Aggregator{})
			r.Secret = append(r.Secret, "RECORD_DSN")
			r.Plain["REPORT_BUCKET"] = ""
			r.TimeoutEqual = "CLAIM_TTL"
		case topology.EntryDeadLetter:
			r.Known = envNames(config.DeadLetter{})
			r.Secret = append(r.Secret, "RECORD_DSN")
			// It deletes a failed report's segments from the report
			// bucket; the default names another bucket.
			r.Plain["REPORT_BUCKET"] = ""
		case "Sweep": // topology.EntrySweep
			r.Known = envNames(config.Sweep{})
			r.Secret = append(r.Secret, "RECORD_DSN", "AMQP_URL")
		default:
			src, ok := report.SourceByEntryPoint(f.EntryPoint)
			if !ok {
				// A new function: its environment is checked once its
				// config struct has a case above.
				t.Errorf("expect: no environment rule for %s: add a case with its config struct", f.EntryPoint)
				continue
			}
			dsn := report.DSNEnv(src.Database)
			r.Known = append(envNames(config.Listener{}), dsn)
			r.Secret = append(r.Secret, dsn)
		}
		e.Env[f.EntryPoint] = r
	}
	return e
}

// splitDatabaseDSNs lists, sorted, the DSN variables of the databases the
// reports are split by (report.SplitBy), which DrainTriggers reads.
func splitDatabaseDSNs() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range report.Reports {
		if r.SplitBy == nil {
			continue
		}
		if dsn := report.DSNEnv(r.SplitBy.Source.Database); !seen[dsn] {
			seen[dsn] = true
			out = append(out, dsn)
		}
	}
	sort.Strings(out)
	return out
}

// envNames lists the environment variables a config struct reads, from its
// envconfig tags.
func envNames(cfg any) []string {
	var names []string
	walkEnv(reflect.TypeOf(cfg), func(name, _ string) { names = append(names, name) })
	return names
}

func walkEnv(t reflect.Type, visit func(name, tag string)) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag, ok := f.Tag.Lookup("env"); ok {
			visit(strings.TrimSpace(strings.Split(tag, ",")[0]), tag)
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			walkEnv(f.Type, visit)
		}
	}
}

// TestExpectComesFromCode guards the expectations themselves.
func TestExpectComesFromCode(t *testing.T) {
	t.Parallel()
	e := expect(t)
	if len(e.Env) != len(e.EntryPoints) {
		t.Errorf("environment rules for %d functions, %d registered", len(e.Env), len(e.EntryPoints))
	}
	for ep, r := range e.Env {
		for k := range r.Plain {
			if !slices.Contains(r.Known, k) {
				t.Errorf("%s: required %s is not read by its config", ep, k)
			}
		}
		for _, k := range r.Secret {
			if !slices.Contains(r.Known, k) {
				t.Errorf("%s: required secret %s is not read by its config", ep, k)
			}
		}
	}
}

// The module and its broken copy are planned once for all the tests below,
// each by one terraform test run, in parallel.
var tf struct {
	once        sync.Once
	err         error
	dir         string // removed by TestMain
	src         string // the repository's copy the archive is built from, with strays
	real, bad   string // module copies: as it is, with every fixture applied
	realRuns    []Run
	badRuns     []Run
	realGraph   map[string][]string
	badGraph    map[string][]string
	badFixtures []fixture
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tf.dir != "" {
		os.RemoveAll(tf.dir)
	}
	os.Exit(code)
}

// planned runs terraform test on both copies the first time it is called;
// it skips the test where terraform or its providers are not available.
func planned(t *testing.T) {
	t.Helper()
	tf.once.Do(func() {
		ctx := context.Background()
		root, err := filepath.Abs(repoRoot)
		if err != nil {
			tf.err = err
			return
		}
		if tf.dir, tf.err = os.MkdirTemp("", "tfcheck-"); tf.err != nil {
			return
		}
		if tf.real, tf.err = Prepare(ctx, root, filepath.Join(tf.dir, "real")); tf.err != nil {
			return
		}
		if tf.bad, tf.err = Prepare(ctx, root, filepath.Join(tf.dir, "broken")); tf.err != nil {
			return
		}
		if tf.badFixtures, tf.err = applyFixtures(moduleDir, fixturesDir, tf.bad); tf.err != nil {
			return
		}
		if tf.src, tf.err = sourceTree(root, filepath.Join(tf.dir, "src")); tf.err != nil {
			return
		}
		args := []string{"-filter=" + planFile, "-var", "source_dir=" + tf.src}
		var wg sync.WaitGroup
		var realErr, badErr, realGraphErr, badGraphErr error
		wg.Go(func() {
			if tf.realGraph, realGraphErr = Graph(ctx, tf.real); realGraphErr == nil {
				tf.realRuns, realErr = Test(ctx, tf.real, args...)
			}
		})
		wg.Go(func() {
			if tf.badGraph, badGraphErr = Graph(ctx, tf.bad); badGraphErr == nil {
				tf.badRuns, badErr = Test(ctx, tf.bad, args...)
			}
		})
		wg.Wait()
		tf.err = errors.Join(realGraphErr, badGraphErr, realErr, badErr)
	})
	if errors.Is(tf.err, ErrSkipped) {
		t.Skip(tf.err)
	}
	if tf.err != nil {
		t.Fatal(tf.err)
	}
}

// planOf is the plan terraform printed for the defaults run.
func planOf(t *testing.T, runs []Run) (*Plan, []string) {
	t.Helper()
	for _, r := range runs {
		if r.File == planFile && r.Name == planRun {
			if r.Plan == nil {
				t.Fatalf("terraform test printed no plan for %s (status %s):\n%s", planRun, r.Status, strings.Join(r.Failures, "\n"))
			}
			return r.Plan, r.Failures
		}
	}
	t.Fatalf("terraform test did not run %s in %s", planRun, planFile)
	return nil, nil
}

// TestModuleMatchesCode is the contract check on terraform/ as it is.
func TestModuleMatchesCode(t *testing.T) {
	t.Parallel()
	planned(t)
	plan, _ := planOf(t, tf.realRuns)
	// A plan the check cannot read would pass vacuously.
	if n := len(plan.Of("google_cloudfunctions2_function", "")); n == 0 {
		t.Fatal("the plan has no function")
	}
	for _, p := range CheckContract(plan, expect(t)) {
		t.Errorf("%s", p)
	}
}

// TestFirstApplyOrder: on a fresh project, every resource waits for the
// APIs, the functions for their grants to propagate, pushes and scheduled
// calls for theirs, and grants to the Pub/Sub agent for the agent.
func TestFirstApplyOrder(t *testing.T) {
	t.Parallel()
	planned(t)
	for _, p := range CheckFirstApply(tf.realGraph) {
		t.Errorf("%s", p)
	}
}

// strays are files an operator's working tree may hold that must never
// reach Cloud Build.
var strays = []string{
	".env",
	"deploy-key.json",
	"notes.md",
	"local/scratch/main.go",
	"terraform/terraform.tfvars",
	"shared/config/testdata/dsn.go",
	"functions/listen/wip_test.go",
	".git/config",
}

// sourceTree copies the repository at root (without .git and .tmp) to dst
// and adds the strays: the module archives that copy, so a test can see
// what an allow-list keeps out.
func sourceTree(root, dst string) (string, error) {
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == ".git" || rel == ".tmp" { // .git is a file in a worktree
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("copy the repository: %w", err)
	}
	for _, s := range strays {
		p := filepath.Join(dst, s)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte("package stray\n// SECRET=do-not-ship\n"), 0o644); err != nil {
			return "", err
		}
	}
	return dst, nil
}

// TestSourceArchive checks the zip Terraform's archive provider built while
// planning the module, from a copy of the repository with stray files: it
// holds what the build needs and none of the strays.
func TestSourceArchive(t *testing.T) {
	t.Parallel()
	planned(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	zipPath := filepath.Join(tf.real, ".terraform", "fanoutexport-source.zip")
	problems, err := CheckArchive(zipPath, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s", p)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if slices.Contains(strays, f.Name) {
			t.Errorf("the source archive holds the stray file %s", f.Name)
		}
	}
}

// TestBrokenModulesFail: every fixture of testdata/broken is applied to
// one copy of the module (fixture_test.go) and planned once. Each fixture's
// want.txt lines must each match a failure of that plan: "assert: text" a
// failed assertion of tests/defaults.tftest.hcl (or another error of the
// run), "RULE: text" a problem this package reports. A line that matches a
// failure of the unbroken module too proves nothing and fails the test.
func TestBrokenModulesFail(t *testing.T) {
	t.Parallel()
	planned(t)
	e := expect(t)
	realPlan, realFailures := planOf(t, tf.realRuns)
	badPlan, badFailures := planOf(t, tf.badRuns)
	got := func(plan *Plan, failures []string, mod string, graph map[string][]string) []string {
		out := slices.Clone(failures)
		for i := range out {
			out[i] = "assert: " + out[i]
		}
		for _, p := range append(CheckContract(plan, e), CheckFirstApply(graph)...) {
			out = append(out, p.String())
		}
		root, _ := filepath.Abs(repoRoot)
		archive, err := CheckArchive(filepath.Join(mod, ".terraform", "fanoutexport-source.zip"), root)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range archive {
			out = append(out, p.String())
		}
		return out
	}
	baseline := got(realPlan, realFailures, tf.real, tf.realGraph)
	broken := got(badPlan, badFailures, tf.bad, tf.badGraph)
	matches := func(all []string, w wantLine) bool {
		return slices.ContainsFunc(all, func(s string) bool {
			rule, msg, _ := strings.Cut(s, ": ")
			return rule == w.rule && strings.Contains(msg, w.msg)
		})
	}
	for _, f := range tf.badFixtures {
		for _, w := range f.want {
			switch {
			case matches(baseline, w):
				t.Errorf("%s: %s: %q matches a failure of the unbroken module: it proves nothing", f.name, w.rule, w.msg)
			case !matches(broken, w):
				t.Errorf("%s: no %s failure containing %q; the broken module's failures:\n  %s", f.name, w.rule, w.msg, strings.Join(broken, "\n  "))
			}
		}
	}
}

// TestVariablesAndOutputsAreDescribed: every variable and output of the
// module and of the example says what it is for.
func TestVariablesAndOutputsAreDescribed(t *testing.T) {
	t.Parallel()
	seen := 0
	for _, dir := range []string{moduleDir, filepath.Join(moduleDir, "examples", "basic"), filepath.Join(moduleDir, "examples", "shared_vpc")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			f, diags := hclparse.NewParser().ParseHCLFile(file)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			for _, b := range f.Body.(*hclsyntax.Body).Blocks {
				if b.Type != "variable" && b.Type != "output" {
					continue
				}
				seen++
				where := filepath.Base(dir) + ": " + b.Type + " " + b.Labels[0]
				a, ok := b.Body.Attributes["description"]
				if !ok {
					t.Errorf("%s has no description", where)
					continue
				}
				v, diags := a.Expr.Value(nil)
				if diags.HasErrors() || v.Type() != cty.String || strings.TrimSpace(v.AsString()) == "" {
					t.Errorf("%s: description is not a non-empty string", where)
				}
			}
		}
	}
	if seen == 0 {
		t.Error("no variables or outputs found")
	}
}

// parseHCL parses file, failing the test on a syntax error.
func parseHCL(t *testing.T, file string) *hclsyntax.Body {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCLFile(file)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f.Body.(*hclsyntax.Body)
}

// TestExamplesPassTheirInputs: an example passes on every input it
// declares (a documented networking input that reaches nothing is how
// examples/basic once could not express a Shared VPC), and its
// terraform.tfvars.example sets only inputs it declares.
func TestExamplesPassTheirInputs(t *testing.T) {
	t.Parallel()
	for _, ex := range []string{"basic", "shared_vpc"} {
		dir := filepath.Join(moduleDir, "examples", ex)
		declared := map[string]bool{}
		used := map[string]bool{}
		files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			body := parseHCL(t, file)
			for _, b := range body.Blocks {
				if b.Type == "variable" {
					declared[b.Labels[0]] = true
				}
			}
			hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
				if e, ok := n.(*hclsyntax.ScopeTraversalExpr); ok && e.Traversal.RootName() == "var" && len(e.Traversal) > 1 {
					if a, ok := e.Traversal[1].(hcl.TraverseAttr); ok {
						used[a.Name] = true
					}
				}
				return nil
			})
		}
		if len(declared) == 0 {
			t.Fatalf("%s: no variables", ex)
		}
		for _, v := range sortedKeys(declared) {
			if !used[v] {
				t.Errorf("examples/%s declares variable %s but passes it nowhere", ex, v)
			}
		}
		tfvars := parseHCL(t, filepath.Join(dir, "terraform.tfvars.example"))
		for _, k := range sortedKeys(tfvars.Attributes) {
			if !declared[k] {
				t.Errorf("examples/%s/terraform.tfvars.example sets %s, which the example does not declare", ex, k)
			}
		}
	}
}

// TestEveryValidationIsExercised: every validation block of the module's
// variables is broken by a run of tests/rules.tftest.hcl that expects its
// failure (a variable with n validations in n runs at least), so a rule
// that stopped working fails a test.
func TestEveryValidationIsExercised(t *testing.T) {
	t.Parallel()
	rules := map[string]int{}
	for _, b := range parseHCL(t, filepath.Join(moduleDir, "variables.tf")).Blocks {
		if b.Type != "variable" {
			continue
		}
		for _, inner := range b.Body.Blocks {
			if inner.Type == "validation" {
				rules[b.Labels[0]]++
			}
		}
	}
	if len(rules) == 0 {
		t.Fatal("no validations found in variables.tf")
	}
	runs := map[string]int{}
	for _, b := range parseHCL(t, filepath.Join(moduleDir, "tests", "rules.tftest.hcl")).Blocks {
		if b.Type != "run" {
			continue
		}
		a, ok := b.Body.Attributes["expect_failures"]
		if !ok {
			continue
		}
		tuple, ok := a.Expr.(*hclsyntax.TupleConsExpr)
		if !ok {
			t.Fatalf("run %s: expect_failures is not a list", b.Labels[0])
		}
		for _, e := range tuple.Exprs {
			if tr, ok := e.(*hclsyntax.ScopeTraversalExpr); ok && tr.Traversal.RootName() == "var" {
				runs[tr.Traversal[1].(hcl.TraverseAttr).Name]++
			}
		}
	}
	for _, v := range sortedKeys(rules) {
		if runs[v] < rules[v] {
			t.Errorf("variable %s has %d validation(s) but only %d run(s) of tests/rules.tftest.hcl expect it to fail", v, rules[v], runs[v])
		}
	}
}
