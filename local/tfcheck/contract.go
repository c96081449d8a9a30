package tfcheck

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Expect is what the Go code says the deployment must contain that
// terraform/topology.json does not already make true: the module takes its
// functions, topics, subscriptions, delivery policies, runtime and the
// hash TTL from that generated file (go generate ./shared/topology), so
// what is left to check is what the module writes by hand. The tests fill
// it from the root registration and shared/config.
type Expect struct {
	EntryPoints []string           // every entry point the root package registers
	Env         map[string]EnvRule // by entry point
	// Secret reports whether an environment variable holding value may
	// only come from Secret Manager (credentials, DSNs, the Redis AUTH
	// string and CA; not a Cloud SQL DSN, which holds no password).
	Secret func(name, value string) bool
}

// EnvRule is what one function's environment must hold.
type EnvRule struct {
	Known        []string          // every name the function's config reads
	Plain        map[string]string // required plain variables; "" accepts any value
	Secret       []string          // required secret_environment_variables
	TimeoutEqual string            // a duration variable equal to the function's timeout
	TimeoutBelow string            // a duration variable below the function's timeout
}

// Rules the contract check reports.
const (
	RuleEntryPoint = "entry-point" // a function resource outside topology.json's, or one missing
	RuleEnv        = "env"         // environment names and values vs config
	RuleSecretEnv  = "secret-env"  // credentials only from Secret Manager
	RuleIAMTable   = "iam-table"   // every grant is in the iam_grants output the tests assert
)

// function is one deployed function, as planned.
type function struct {
	timeout int
	env     map[string]string
	secrets map[string]bool
}

// CheckContract returns every way the planned module disagrees with the code.
func CheckContract(p *Plan, e Expect) []Problem {
	var out []Problem
	add := func(rule, format string, args ...any) {
		out = append(out, Problem{Rule: rule, Msg: fmt.Sprintf(format, args...)})
	}

	fns := map[string]function{}
	for _, r := range p.Of("google_cloudfunctions2_function", "") {
		b, s := first(r.Change.After, "build_config"), first(r.Change.After, "service_config")
		entry := str(b, "entry_point")
		f := function{timeout: num(s, "timeout_seconds"), env: map[string]string{}, secrets: map[string]bool{}}
		for k, v := range obj(s, "environment_variables") {
			f.env[k], _ = v.(string)
		}
		for _, sv := range list(s, "secret_environment_variables") {
			f.secrets[str(sv, "key")] = true
		}
		if _, dup := fns[entry]; dup {
			add(RuleEntryPoint, "%s deploys entry point %q again", r.Address, entry)
		}
		fns[entry] = f
	}
	for _, ep := range sortedKeys(fns) {
		if !slices.Contains(e.EntryPoints, ep) {
			add(RuleEntryPoint, "the module deploys entry point %q, which the root package does not register", ep)
		}
	}
	for _, ep := range e.EntryPoints {
		if _, ok := fns[ep]; !ok {
			add(RuleEntryPoint, "entry point %q is registered but no function deploys it", ep)
		}
	}
	prefixes := map[string]bool{}
	for _, f := range fns {
		prefixes[f.env["PUBSUB_NAME_PREFIX"]] = true
	}
	if len(prefixes) > 1 {
		add(RuleEnv, "functions disagree on PUBSUB_NAME_PREFIX: %v", sortedKeys(prefixes))
	}

	out = append(out, checkEnv(e, fns)...)
	out = append(out, checkIAMTable(p)...)

	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].Msg < out[j].Msg
	})
	return out
}

func checkEnv(e Expect, fns map[string]function) []Problem {
	var out []Problem
	add := func(rule, format string, args ...any) {
		out = append(out, Problem{Rule: rule, Msg: fmt.Sprintf(format, args...)})
	}
	for _, ep := range sortedKeys(fns) {
		f := fns[ep]
		rule, ok := e.Env[ep]
		if !ok {
			continue // not registered: the entry-point rule says so
		}
		for _, k := range sortedKeys(f.env) {
			switch {
			case e.Secret != nil && e.Secret(k, f.env[k]):
				add(RuleSecretEnv, "%s: %s is a plain environment variable: it must come from Secret Manager", ep, k)
			case !slices.Contains(rule.Known, k):
				add(RuleEnv, "%s: %s is not read by its config", ep, k)
			}
		}
		for _, k := range sortedKeys(f.secrets) {
			if !slices.Contains(rule.Known, k) {
				add(RuleEnv, "%s: secret %s is not read by its config", ep, k)
			}
		}
		for _, k := range sortedKeys(rule.Plain) {
			got, ok := f.env[k]
			if want := rule.Plain[k]; !ok || (want != "" && got != want) {
				add(RuleEnv, "%s: %s = %q, want %q", ep, k, got, cmpOr(want, "a value"))
			}
		}
		for _, k := range rule.Secret {
			if v, plain := f.env[k]; !f.secrets[k] && !(plain && e.Secret != nil && !e.Secret(k, v)) {
				add(RuleSecretEnv, "%s: %s does not come from Secret Manager", ep, k)
			}
		}
		timeout := time.Duration(f.timeout) * time.Second
		if k := rule.TimeoutEqual; k != "" {
			if d, err := time.ParseDuration(f.env[k]); err != nil || d != timeout {
				add(RuleEnv, "%s: %s = %q, want the function's timeout (%s)", ep, k, f.env[k], timeout)
			}
		}
		if k := rule.TimeoutBelow; k != "" {
			if d, err := time.ParseDuration(f.env[k]); err != nil || d >= timeout {
				add(RuleEnv, "%s: %s = %q is not below the function's timeout (%s)", ep, k, f.env[k], timeout)
			}
		}
	}
	return out
}

// checkIAMTable: a terraform test cannot list a module's resources, so the
// tests assert each identity's grants on the iam_grants output. That is
// exact only if every IAM resource feeds it.
func checkIAMTable(p *Plan) []Problem {
	var out []Problem
	var table map[string]any
	if oc, ok := p.Outputs["iam_grants"]; ok {
		table, _ = oc.After.(map[string]any)
	}
	for _, r := range p.Resources {
		if r.Mode != "managed" || !strings.Contains(r.Type, "_iam_") {
			continue
		}
		if !strings.HasSuffix(r.Type, "_iam_member") {
			out = append(out, Problem{RuleIAMTable, fmt.Sprintf("%s is authoritative: use an _iam_member grant in iam.tf", r.Address)})
			continue
		}
		member, role := str(r.Change.After, "member"), str(r.Change.After, "role")
		listed := false
		for _, g := range listOf(table[member]) {
			s, _ := g.(string)
			listed = listed || strings.HasPrefix(s, role+" on ")
		}
		if !listed {
			out = append(out, Problem{RuleIAMTable, fmt.Sprintf("%s grants %s to %s outside the iam_grants output (iam.tf's tables)", r.Address, role, member)})
		}
	}
	return out
}

// Helpers over the planned values, which are JSON: objects, lists
// (blocks are lists of objects), strings and float64 numbers.

func obj(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	return v
}

func listOf(v any) []any {
	l, _ := v.([]any)
	return l
}

func list(m map[string]any, k string) []map[string]any {
	var out []map[string]any
	for _, v := range listOf(m[k]) {
		if o, ok := v.(map[string]any); ok {
			out = append(out, o)
		}
	}
	return out
}

func first(m map[string]any, k string) map[string]any {
	if l := list(m, k); len(l) > 0 {
		return l[0]
	}
	return nil
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func num(m map[string]any, k string) int {
	f, _ := m[k].(float64)
	return int(f)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
