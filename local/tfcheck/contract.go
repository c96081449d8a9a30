package tfcheck

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Expect is what the Go code says the deployment must contain. The tests
// fill it from the root registration, shared/report, shared/topology and
// shared/config, so the module is checked against the code, not a copy.
type Expect struct {
	EntryPoints []string            // every entry point the root package registers
	Functions   []topology.Function // topology.Functions()
	Topics      []string            // every topic the code uses, unprefixed
	// PullSubscriptions are the subscriptions nobody pushes from, unprefixed.
	PullSubscriptions []string
	GoRuntime         string             // "go" + major + minor of go.mod's go directive
	Env               map[string]EnvRule // by entry point
	// Secret reports whether an environment variable holding value may
	// only come from Secret Manager (credentials, DSNs, the Redis AUTH
	// string and CA; not a Cloud SQL DSN, which holds no password).
	Secret func(name, value string) bool
	// StateTTL is the report hash's lifetime (STATE_TTL), a fixed contract.
	StateTTL time.Duration
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
	RuleEntryPoint   = "entry-point"  // deployed functions vs registered entry points
	RuleRuntime      = "runtime"      // runtime vs go.mod
	RuleTopics       = "topics"       // topics vs the code's
	RuleSubscription = "subscription" // push and pull subscriptions vs topology
	RuleDelivery     = "delivery"     // dead-letter topic, attempts, backoff vs topology
	RuleScheduler    = "scheduler"    // a scheduled function has its job
	RuleEnv          = "env"          // environment names and values vs config
	RuleSecretEnv    = "secret-env"   // credentials only from Secret Manager
	RuleIAMTable     = "iam-table"    // every grant is in the iam_grants output the tests assert
)

// function is one deployed function, as planned.
type function struct {
	entry, uri string
	timeout    int
	runtime    string
	env        map[string]string
	secrets    map[string]bool
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
		f := function{entry: str(b, "entry_point"), runtime: str(b, "runtime"), uri: str(s, "uri"),
			timeout: num(s, "timeout_seconds"), env: map[string]string{}, secrets: map[string]bool{}}
		for k, v := range obj(s, "environment_variables") {
			f.env[k], _ = v.(string)
		}
		for _, sv := range list(s, "secret_environment_variables") {
			f.secrets[str(sv, "key")] = true
		}
		if _, dup := fns[f.entry]; dup {
			add(RuleEntryPoint, "%s deploys entry point %q again", r.Address, f.entry)
		}
		fns[f.entry] = f
		if f.runtime != e.GoRuntime {
			add(RuleRuntime, "%s: runtime %q does not match go.mod (%q)", r.Address, f.runtime, e.GoRuntime)
		}
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

	prefix := ""
	prefixes := map[string]bool{}
	for _, f := range fns {
		prefix = f.env["PUBSUB_NAME_PREFIX"]
		prefixes[prefix] = true
	}
	if len(prefixes) > 1 {
		add(RuleEnv, "functions disagree on PUBSUB_NAME_PREFIX: %v", sortedKeys(prefixes))
	}

	topicByID := map[string]string{}
	var topics []string
	for _, r := range p.Of("google_pubsub_topic", "") {
		name := str(r.Change.After, "name")
		topicByID[str(r.Change.After, "id")] = name
		topics = append(topics, strings.TrimPrefix(name, prefix))
	}
	for _, t := range diff(e.Topics, topics) {
		add(RuleTopics, "topic %q is used by the code but the module has none", prefix+t)
	}
	for _, t := range diff(topics, e.Topics) {
		add(RuleTopics, "the module creates topic %q, which the code does not use", prefix+t)
	}

	out = append(out, checkSubscriptions(p, e, fns, topicByID, prefix)...)
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

func checkSubscriptions(p *Plan, e Expect, fns map[string]function, topicByID map[string]string, prefix string) []Problem {
	var out []Problem
	add := func(rule, format string, args ...any) {
		out = append(out, Problem{Rule: rule, Msg: fmt.Sprintf(format, args...)})
	}
	pushTo := map[string][]Resource{} // entry point -> its push subscriptions
	var pull []string
	for _, r := range p.Of("google_pubsub_subscription", "") {
		pc := first(r.Change.After, "push_config")
		if pc == nil {
			pull = append(pull, strings.TrimPrefix(str(r.Change.After, "name"), prefix))
			continue
		}
		endpoint := str(pc, "push_endpoint")
		for ep, f := range fns {
			if f.uri != "" && f.uri == endpoint {
				pushTo[ep] = append(pushTo[ep], r)
			}
		}
	}
	for _, s := range diff(pull, e.PullSubscriptions) {
		add(RuleSubscription, "the module creates pull subscription %q, which shared/topology does not name", prefix+s)
	}
	for _, s := range diff(e.PullSubscriptions, pull) {
		add(RuleSubscription, "pull subscription %q of shared/topology is missing", prefix+s)
	}

	for _, f := range e.Functions {
		switch f.Kind {
		case topology.KindScheduled:
			found := false
			for _, j := range p.Of("google_cloud_scheduler_job", "") {
				found = found || (fns[f.EntryPoint].uri != "" && str(first(j.Change.After, "http_target"), "uri") == fns[f.EntryPoint].uri)
			}
			if !found {
				add(RuleScheduler, "%s is scheduled but no google_cloud_scheduler_job calls it", f.EntryPoint)
			}
			continue
		case topology.KindPush:
		default:
			continue
		}
		subs := pushTo[f.EntryPoint]
		if len(subs) != 1 {
			add(RuleSubscription, "%s is Pub/Sub-driven: want one push subscription to it (%q on %q), have %d", f.EntryPoint, prefix+f.Subscription, prefix+f.Topic, len(subs))
			continue
		}
		s := subs[0].Change.After
		addr := subs[0].Address
		if got := str(s, "name"); got != prefix+f.Subscription {
			add(RuleSubscription, "%s is named %q, want %q (shared/topology)", addr, got, prefix+f.Subscription)
		}
		if got := topicByID[str(s, "topic")]; got != prefix+f.Topic {
			add(RuleSubscription, "%s reads topic %q, want %q", addr, got, prefix+f.Topic)
		}
		dl := first(s, "dead_letter_policy")
		if got := topicByID[str(dl, "dead_letter_topic")]; got != prefix+f.DeadLetterTopic {
			add(RuleDelivery, "%s dead-letters to %q, want %q", addr, got, prefix+f.DeadLetterTopic)
		}
		if got := num(dl, "max_delivery_attempts"); got != f.MaxDeliveryAttempts {
			add(RuleDelivery, "%s: max_delivery_attempts is %d, want %d", addr, got, f.MaxDeliveryAttempts)
		}
		if f.DeadLetterTopic == topology.TopicDeadLetter {
			rp := first(s, "retry_policy")
			want := fmt.Sprintf("%ds", topology.BackoffSeconds)
			if lo, hi := str(rp, "minimum_backoff"), str(rp, "maximum_backoff"); lo != want || hi != want {
				add(RuleDelivery, "%s: retry backoff %q..%q, want %s (topology.BackoffSeconds)", addr, lo, hi, want)
			}
		}
	}
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
		if v, ok := f.env["STATE_TTL"]; ok && e.StateTTL != 0 {
			if d, err := time.ParseDuration(v); err != nil || d != e.StateTTL {
				add(RuleEnv, "%s: STATE_TTL = %q, want %s (the report hash's fixed TTL)", ep, v, e.StateTTL)
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

// diff lists the elements of a that are not in b, sorted.
func diff(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
