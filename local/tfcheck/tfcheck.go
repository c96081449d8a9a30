// Package tfcheck checks what Terraform cannot know about terraform/ and
// what terraform/topology.json does not make true by construction: that
// every function the module deploys is registered, that each function's
// environment holds the names its config reads (credentials only from
// Secret Manager), that every grant shows in the iam_grants output, that
// a first apply creates things in an order that works, and that the
// source archive holds what the build needs. The functions, listeners,
// topics, subscriptions, delivery policies, runtime and hash TTL come from
// topology.json, which `go generate ./shared/topology` writes from the
// code; a test there fails when it is stale.
//
// Everything else about the module is Terraform's to check (terraform
// validate, and terraform/tests with mock providers, run by
// local/terraform-check.sh). The module's values come from Terraform too:
// the tests run `terraform test -json -verbose` on a copy of the module and
// read the plan Terraform printed, never an evaluation of their own.
package tfcheck

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Problem is one rule the module breaks.
type Problem struct {
	Rule string // short identifier, e.g. "entry-point"
	Msg  string
}

func (p Problem) String() string { return p.Rule + ": " + p.Msg }

// Run is one run block of a `terraform test -json -verbose` invocation.
type Run struct {
	File, Name string
	Status     string   // pass, fail, error, skip
	Failures   []string // details of the run's error diagnostics (failed assertions included)
	Plan       *Plan    // the plan printed for the run, if any
}

// Plan is the part of a plan this package reads: each resource instance's
// planned values, and the outputs'.
type Plan struct {
	Resources []Resource            `json:"resource_changes"`
	Outputs   map[string]OutputPlan `json:"output_changes"`
}

// OutputPlan is an output's planned value.
type OutputPlan struct {
	After any `json:"after"`
}

// Resource is one resource instance of a plan.
type Resource struct {
	Address string `json:"address"`
	Mode    string `json:"mode"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Index   any    `json:"index"` // for_each key or count index; nil for none
	Change  struct {
		After map[string]any `json:"after"`
	} `json:"change"`
}

// Key is the instance's for_each key ("" for none).
func (r Resource) Key() string {
	s, _ := r.Index.(string)
	return s
}

// Of lists the managed instances of resource type typ (and name, if given).
func (p *Plan) Of(typ, name string) []Resource {
	var out []Resource
	for _, r := range p.Resources {
		if r.Mode == "managed" && r.Type == typ && (name == "" || r.Name == name) {
			out = append(out, r)
		}
	}
	return out
}

// ParseTestJSON reads the machine-readable output of
// `terraform test -json -verbose`, one run per run block in order.
func ParseTestJSON(r io.Reader) ([]Run, error) {
	var runs []*Run
	byKey := map[[2]string]*Run{}
	get := func(file, name string) *Run {
		k := [2]string{file, name}
		if byKey[k] == nil {
			byKey[k] = &Run{File: file, Name: name}
			runs = append(runs, byKey[k])
		}
		return byKey[k]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30) // a verbose plan carries the provider schemas (~10 MB)
	for sc.Scan() {
		var m struct {
			Type    string `json:"type"`
			File    string `json:"@testfile"`
			Run     string `json:"@testrun"`
			TestRun struct {
				Status string `json:"status"`
			} `json:"test_run"`
			Diagnostic struct {
				Severity, Summary, Detail string
			} `json:"diagnostic"`
			TestPlan *Plan `json:"test_plan"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("terraform test -json: %w in %.200q", err, sc.Bytes())
		}
		if m.Run == "" {
			continue
		}
		run := get(m.File, m.Run)
		switch m.Type {
		case "test_run":
			if m.TestRun.Status != "" {
				run.Status = m.TestRun.Status
			}
		case "diagnostic":
			if m.Diagnostic.Severity == "error" {
				run.Failures = append(run.Failures, m.Diagnostic.Summary+": "+m.Diagnostic.Detail)
			}
		case "test_plan":
			run.Plan = m.TestPlan
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("terraform test -json: %w", err)
	}
	out := make([]Run, len(runs))
	for i, r := range runs {
		out[i] = *r
	}
	return out, nil
}

// ErrSkipped reports that terraform or its providers are not available
// here; its message says why.
var ErrSkipped = errors.New("terraform checks skipped")

// Prepare copies the module of the repository at root into dir/terraform
// and runs terraform init there, with the providers local/terraform-check.sh
// finds. It returns the copy's path.
func Prepare(ctx context.Context, root, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "sh", root+"/local/terraform-check.sh", "prepare", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		return "", fmt.Errorf("%w: %s", ErrSkipped, strings.TrimSpace(out.String()))
	case err != nil:
		return "", fmt.Errorf("terraform-check.sh prepare: %w\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[len(lines)-1], nil
}

// Test runs `terraform test -json -verbose` in the module copy mod with the
// given extra arguments. A failing test is not an error: its runs say what
// failed.
func Test(ctx context.Context, mod string, args ...string) ([]Run, error) {
	cmd := exec.CommandContext(ctx, "terraform", append([]string{"-chdir=" + mod, "test", "-json", "-verbose"}, args...)...)
	cmd.Env = append(cmd.Environ(), "CHECKPOINT_DISABLE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	runs, perr := ParseTestJSON(&stdout)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return nil, fmt.Errorf("terraform test: %w", err)
	}
	if perr != nil {
		return nil, perr
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("terraform test ran nothing: %v\n%s", err, stderr.String())
	}
	return runs, nil
}

// Graph runs `terraform graph` in the module copy mod and returns its
// dependency edges between resources (by resource, not instance): each
// resource address, every one of them, to the addresses it waits for.
func Graph(ctx context.Context, mod string) (map[string][]string, error) {
	cmd := exec.CommandContext(ctx, "terraform", "-chdir="+mod, "graph")
	cmd.Env = append(cmd.Environ(), "CHECKPOINT_DISABLE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("terraform graph: %w\n%s", err, stderr.String())
	}
	g := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if from, to, ok := strings.Cut(line, " -> "); ok {
			from, to = strings.Trim(from, `"`), strings.Trim(strings.TrimSuffix(to, ";"), `"`)
			g[from] = append(g[from], to)
		} else if node, _, ok := strings.Cut(line, " [label="); ok && strings.HasPrefix(node, `"`) {
			g[strings.Trim(node, `"`)] = g[strings.Trim(node, `"`)] // a resource nothing depends on
		}
	}
	if len(g) == 0 {
		return nil, fmt.Errorf("terraform graph printed no edges:\n%s", out)
	}
	return g, nil
}
