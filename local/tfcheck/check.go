package tfcheck

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Expect is what the code says the deployment must contain. The tests fill
// it from the root registration, shared/report and shared/config, so the
// module is checked against the code rather than against a copy.
type Expect struct {
	EntryPoints []string            // every entry point the root package registers
	Functions   []topology.Function // topology.Functions()
	Topics      []string            // topology.Topics(), unprefixed
	GoRuntime   string              // "go" + major + minor of go.mod's go directive
	Env         map[string]EnvRule  // by entry point
	// Secret reports whether an environment variable may only come from
	// Secret Manager (credentials, DSNs, the Redis AUTH string and CA).
	Secret func(name string) bool
}

// EnvRule is what one function's environment must hold.
type EnvRule struct {
	Known        []string          // every name the function's config reads
	Plain        map[string]string // required plain variables; "" accepts any value
	Secret       []string          // required secret_environment_variables
	TimeoutEqual string            // a duration variable equal to the function's timeout
	TimeoutBelow string            // a duration variable below the function's timeout
}

// Rules the check reports, one identifier each.
const (
	RuleParse            = "parse"                // HCL or evaluation error
	RuleEntryPoint       = "entry-point"          // function resources vs. registered entry points
	RuleRuntime          = "runtime"              // runtime vs. go.mod
	RuleIngress          = "ingress"              // internal ingress only
	RuleIdentity         = "identity"             // one service account per function
	RuleNetwork          = "network"              // Direct VPC egress
	RuleScaling          = "scaling"              // max_instance_count from variables
	RuleTimeout          = "timeout"              // timeout within the push ack deadline
	RuleEnv              = "env"                  // environment names and values vs. config
	RuleSecretEnv        = "secret-env"           // secrets only from Secret Manager
	RuleTopics           = "topics"               // every topology topic exists
	RuleSubscriptionGone = "subscription-missing" // a push function without subscription
	RuleSubscription     = "subscription"         // name, topic, push target
	RuleDeadLetter       = "dead-letter-policy"   // 6 deliveries, then the dead-letter topic
	RuleRetry            = "retry-policy"         // 60 s backoff
	RuleAckDeadline      = "ack-deadline"         // >= the function's timeout, <= 600 s
	RuleRetention        = "retention"            // long enough for every retry
	RuleExpiration       = "expiration"           // subscriptions never expire
	RulePushAuth         = "push-auth"            // OIDC with a dedicated identity
	RulePubSubAgent      = "pubsub-agent"         // the service agent can dead-letter
	RuleInvoker          = "invoker"              // run.invoker: exactly the pushing identity
	RuleScheduler        = "scheduler"            // scheduled functions have a job with OIDC
	RulePublicIAM        = "public-iam"           // allUsers / allAuthenticatedUsers
	RuleProjectIAM       = "iam-project"          // project-wide grants
	RuleBucketPrivate    = "bucket-private"       // uniform access, public access prevention
	RuleBucketLifecycle  = "bucket-lifecycle"     // reports are deleted after N days
	RuleBucketWriters    = "bucket-writers"       // only the aggregator writes reports
	RuleRedis            = "redis"                // AUTH, TLS, noeviction
	RuleFormat           = "fmt"                  // canonical formatting
)

const (
	// maxAckDeadlineSeconds is the longest ack deadline Pub/Sub allows.
	maxAckDeadlineSeconds = 600
	pubsubAgentSuffix     = "@gcp-sa-pubsub.iam.gserviceaccount.com"
)

// fnRes is one google_cloudfunctions2_function instance, as deployed.
type fnRes struct {
	in      *Instance
	build   Block
	svc     Block
	entry   string
	sa      *Ref
	timeout int64 // 0 when unknown
	env     cty.Value
	secrets map[string]bool
}

type subscription struct {
	in         *Instance
	body       Block
	name       string
	topic      string
	push       bool
	fn         *fnRes
	pushSA     *Ref
	hasDL      bool
	dlTopic    string
	dlTopicRef *Ref
	attempts   int64
	hasRetry   bool
	minBackoff time.Duration
	maxBackoff time.Duration
	ack        int64
	retention  time.Duration
}

type grant struct {
	in          *Instance
	role        string
	members     []cty.Value
	target      []Ref
	conditioned bool
}

type checker struct {
	m       *Module
	e       Expect
	out     []Problem
	fns     []*fnRes
	byRef   map[Ref]*fnRes
	subs    []*subscription
	grants  []grant
	prefix  string
	kind    map[string]topology.Kind
	entries map[string]bool
}

// Check returns every rule the module breaks, parse problems included.
func Check(m *Module, e Expect) []Problem {
	c := &checker{m: m, e: e, byRef: map[Ref]*fnRes{}, kind: map[string]topology.Kind{}, entries: map[string]bool{}}
	c.out = append(c.out, m.Problems...)
	for _, f := range e.Functions {
		c.kind[f.EntryPoint] = f.Kind
	}
	for _, ep := range e.EntryPoints {
		c.entries[ep] = true
	}
	c.loadFunctions()
	c.loadGrants()
	c.loadSubscriptions()

	c.checkFunctions()
	c.checkEnv()
	c.checkTopics()
	c.checkSubscriptions()
	c.checkPubSubAgent()
	c.checkInvokers()
	c.checkPublicIAM()
	c.checkProjectIAM()
	c.checkBuckets()
	c.checkRedis()

	sort.SliceStable(c.out, func(i, j int) bool {
		if c.out[i].Rule != c.out[j].Rule {
			return c.out[i].Rule < c.out[j].Rule
		}
		return c.out[i].Pos < c.out[j].Pos
	})
	return c.out
}

func (c *checker) add(rule, pos, format string, args ...any) {
	c.out = append(c.out, Problem{Rule: rule, Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// eval evaluates an attribute, reporting evaluation errors.
func (c *checker) eval(b Block, name string) cty.Value {
	v, diags := b.Eval(name)
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			c.add(RuleParse, b.Pos(name), "%s: %s", d.Summary, d.Detail)
		}
	}
	return v
}

func firstRef(v cty.Value, typ string) *Ref {
	refs := Refs(v, typ)
	if len(refs) == 0 {
		return nil
	}
	return &refs[0]
}

// topicName resolves a topic reference (or a literal name) to its name.
func (c *checker) topicName(v cty.Value) (string, *Ref) {
	if r := firstRef(v, "google_pubsub_topic"); r != nil {
		if in := c.m.Lookup(*r); in != nil {
			if s, ok := String(c.eval(in.Body(), "name")); ok {
				return s, r
			}
		}
		return "", r
	}
	if s, ok := String(v); ok {
		return s[strings.LastIndex(s, "/")+1:], nil
	}
	return "", nil
}

func (c *checker) loadFunctions() {
	for _, in := range c.m.Of("google_cloudfunctions2_function") {
		f := &fnRes{in: in, secrets: map[string]bool{}}
		body := in.Body()
		var ok bool
		if f.build, ok = body.Block("build_config"); !ok {
			c.add(RuleEntryPoint, pos(body.Range), "%s has no build_config", in.Addr())
		}
		if f.svc, ok = body.Block("service_config"); !ok {
			c.add(RuleIdentity, pos(body.Range), "%s has no service_config", in.Addr())
		}
		if f.build.Body != nil {
			f.entry, _ = String(c.eval(f.build, "entry_point"))
		}
		if f.svc.Body != nil {
			f.sa = firstRef(c.eval(f.svc, "service_account_email"), "google_service_account")
			f.timeout, _ = Int(c.eval(f.svc, "timeout_seconds"))
			f.env = c.eval(f.svc, "environment_variables")
			for _, s := range f.svc.Blocks("secret_environment_variables") {
				if k, ok := String(c.eval(s, "key")); ok {
					f.secrets[k] = true
				}
			}
		}
		c.fns = append(c.fns, f)
		c.byRef[in.Ref()] = f
	}
	for _, in := range c.m.Of("google_cloudfunctions_function") {
		c.add(RuleEntryPoint, pos(in.Res.Block.DefRange()), "%s is a 1st gen function: deploy google_cloudfunctions2_function", in.Addr())
	}
	for _, f := range c.fns {
		if v, ok := Index(f.env, "PUBSUB_NAME_PREFIX"); ok {
			if s, ok := String(v); ok {
				c.prefix = s
				break
			}
		}
	}
}

func (c *checker) loadSubscriptions() {
	for _, in := range c.m.Of("google_pubsub_subscription") {
		b := in.Body()
		s := &subscription{in: in, body: b, attempts: 5, minBackoff: 10 * time.Second,
			maxBackoff: 600 * time.Second, ack: 10, retention: 7 * 24 * time.Hour}
		s.name, _ = String(c.eval(b, "name"))
		s.topic, _ = c.topicName(c.eval(b, "topic"))
		if pc, ok := b.Block("push_config"); ok {
			s.push = true
			if r := firstRef(c.eval(pc, "push_endpoint"), "google_cloudfunctions2_function"); r != nil {
				s.fn = c.byRef[*r]
			}
			if oidc, ok := pc.Block("oidc_token"); ok {
				s.pushSA = firstRef(c.eval(oidc, "service_account_email"), "google_service_account")
			}
		}
		if dl, ok := b.Block("dead_letter_policy"); ok {
			s.hasDL = true
			s.dlTopic, s.dlTopicRef = c.topicName(c.eval(dl, "dead_letter_topic"))
			if n, ok := Int(c.eval(dl, "max_delivery_attempts")); ok {
				s.attempts = n
			} else if dl.Has("max_delivery_attempts") {
				s.attempts = -1
			}
		}
		if rp, ok := b.Block("retry_policy"); ok {
			s.hasRetry = true
			s.minBackoff = c.duration(rp, "minimum_backoff", s.minBackoff)
			s.maxBackoff = c.duration(rp, "maximum_backoff", s.maxBackoff)
		}
		if n, ok := Int(c.eval(b, "ack_deadline_seconds")); ok {
			s.ack = n
		} else if b.Has("ack_deadline_seconds") {
			s.ack = -1
		}
		s.retention = c.duration(b, "message_retention_duration", s.retention)
		c.subs = append(c.subs, s)
	}
}

func (c *checker) duration(b Block, name string, def time.Duration) time.Duration {
	if !b.Has(name) {
		return def
	}
	v := c.eval(b, name)
	if v, ok := Known(v); ok && v.IsNull() {
		return def
	}
	s, ok := String(v)
	if !ok {
		return -1
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.add(RuleParse, b.Pos(name), "%s = %q is not a duration", name, s)
		return -1
	}
	return d
}

func (c *checker) loadGrants() {
	for _, r := range c.m.Resources {
		if r.Mode != "resource" || !(strings.HasSuffix(r.Type, "_iam_member") || strings.HasSuffix(r.Type, "_iam_binding")) {
			continue
		}
		for _, in := range r.Instances {
			b := in.Body()
			g := grant{in: in}
			g.role, _ = String(c.eval(b, "role"))
			if b.Has("member") {
				g.members = append(g.members, c.eval(b, "member"))
			}
			if b.Has("members") {
				if v, ok := Known(c.eval(b, "members")); ok && v.CanIterateElements() {
					for it := v.ElementIterator(); it.Next(); {
						_, e := it.Element()
						g.members = append(g.members, e)
					}
				} else {
					g.members = append(g.members, c.eval(b, "members"))
				}
			}
			for name := range b.Body.Attributes {
				switch name {
				case "role", "member", "members", "project", "location", "region", "for_each", "count", "depends_on", "provider", "lifecycle":
					continue
				}
				g.target = append(g.target, Refs(c.eval(b, name), "")...)
			}
			_, g.conditioned = b.Block("condition")
			c.grants = append(c.grants, g)
		}
	}
}

func (g grant) on(ref Ref) bool {
	for _, t := range g.target {
		if t == ref {
			return true
		}
	}
	return false
}

func isPubSubAgent(v cty.Value) bool {
	s, ok := String(v)
	return ok && strings.HasPrefix(s, "serviceAccount:") && strings.HasSuffix(s, pubsubAgentSuffix)
}

func (c *checker) checkFunctions() {
	seen := map[string]*fnRes{}
	bySA := map[Ref][]*fnRes{}
	for _, f := range c.fns {
		addr := f.in.Addr()
		if f.build.Body != nil {
			switch {
			case f.entry == "":
				c.add(RuleEntryPoint, f.build.Pos("entry_point"), "%s: entry_point is not known offline", addr)
			case !c.entries[f.entry]:
				c.add(RuleEntryPoint, f.build.Pos("entry_point"), "%s deploys entry point %q, which the root package does not register", addr, f.entry)
			case seen[f.entry] != nil:
				c.add(RuleEntryPoint, f.build.Pos("entry_point"), "%s deploys entry point %q again (also %s)", addr, f.entry, seen[f.entry].in.Addr())
			default:
				seen[f.entry] = f
			}
			if rt, _ := String(c.eval(f.build, "runtime")); rt != c.e.GoRuntime {
				c.add(RuleRuntime, f.build.Pos("runtime"), "%s: runtime %q does not match go.mod (%q)", addr, rt, c.e.GoRuntime)
			}
		}
		if f.svc.Body == nil {
			continue
		}
		if s, _ := String(c.eval(f.svc, "ingress_settings")); s != "ALLOW_INTERNAL_ONLY" {
			c.add(RuleIngress, f.svc.Pos("ingress_settings"), "%s: ingress_settings is %q, want ALLOW_INTERNAL_ONLY", addr, s)
		}
		if f.sa == nil {
			c.add(RuleIdentity, f.svc.Pos("service_account_email"), "%s does not run as a service account of this module (the default compute account holds Editor)", addr)
		} else {
			bySA[*f.sa] = append(bySA[*f.sa], f)
		}
		if _, ok := f.svc.Block("direct_vpc_network_interface"); !ok || !f.svc.Has("direct_vpc_egress") {
			c.add(RuleNetwork, pos(f.svc.Range), "%s has no Direct VPC egress (direct_vpc_network_interface and direct_vpc_egress): it cannot reach Memorystore", addr)
		}
		c.checkScaling(f, addr)
		if f.timeout <= 0 {
			c.add(RuleTimeout, f.svc.Pos("timeout_seconds"), "%s: timeout_seconds is not known offline", addr)
		} else if c.kind[f.entry] == topology.KindPush && f.timeout > maxAckDeadlineSeconds {
			c.add(RuleTimeout, f.svc.Pos("timeout_seconds"), "%s: timeout %d s exceeds the longest push ack deadline (%d s)", addr, f.timeout, maxAckDeadlineSeconds)
		}
	}
	for _, ep := range c.e.EntryPoints {
		if seen[ep] == nil {
			c.add(RuleEntryPoint, "?", "entry point %q is registered but no google_cloudfunctions2_function deploys it", ep)
		}
	}
	for _, ref := range sortedRefs(bySA) {
		if fs := bySA[ref]; len(fs) > 1 {
			var names []string
			for _, f := range fs {
				names = append(names, f.in.Addr())
			}
			c.add(RuleIdentity, fs[0].svc.Pos("service_account_email"), "%s share the service account %s: each function needs its own", strings.Join(names, ", "), ref.Addr())
		}
	}
}

func sortedRefs[V any](m map[Ref]V) []Ref {
	out := make([]Ref, 0, len(m))
	for r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr() < out[j].Addr() })
	return out
}

func (c *checker) checkScaling(f *fnRes, addr string) {
	a, ok := f.svc.Attr("max_instance_count")
	if !ok {
		c.add(RuleScaling, pos(f.svc.Range), "%s has no max_instance_count: it could exhaust the databases' connections", addr)
		return
	}
	n, known := Int(c.eval(f.svc, "max_instance_count"))
	if c.kind[f.entry] == topology.KindScheduled {
		if !known || n != 1 {
			c.add(RuleScaling, pos(a.SrcRange), "%s: max_instance_count of a scheduled drain must be 1 (one consumer at a time)", addr)
		}
		return
	}
	// Set by the operator: the value comes from a variable, directly or
	// through locals (each.value of a function map).
	if len(Vars(c.eval(f.svc, "max_instance_count"))) == 0 {
		c.add(RuleScaling, pos(a.SrcRange), "%s: max_instance_count is not taken from a variable", addr)
	}
	if known && n < 1 {
		c.add(RuleScaling, pos(a.SrcRange), "%s: max_instance_count %d", addr, n)
	}
}

func (c *checker) checkEnv() {
	prefixes := map[string]bool{}
	for _, f := range c.fns {
		rule, ok := c.e.Env[f.entry]
		if !ok || f.svc.Body == nil {
			continue
		}
		addr, p := f.in.Addr(), f.svc.Pos("environment_variables")
		known := map[string]bool{}
		for _, k := range rule.Known {
			known[k] = true
		}
		plain, ok := Keys(f.env)
		if !ok && f.env != cty.NilVal {
			c.add(RuleEnv, p, "%s: the names of environment_variables are not known offline", addr)
		}
		for _, k := range plain {
			v, _ := Index(f.env, k)
			if c.e.Secret != nil && c.e.Secret(k) {
				c.add(RuleSecretEnv, p, "%s: %s is a plain environment variable: it must come from Secret Manager (secret_environment_variables)", addr, k)
			} else if !known[k] {
				c.add(RuleEnv, p, "%s: %s is not read by its config", addr, k)
			}
			if k == "PUBSUB_NAME_PREFIX" {
				s, _ := String(v)
				prefixes[s] = true
			}
		}
		if _, ok := Index(f.env, "PUBSUB_NAME_PREFIX"); !ok {
			prefixes[""] = true
		}
		for k := range f.secrets {
			if !known[k] {
				c.add(RuleEnv, f.svc.Pos("secret_environment_variables"), "%s: secret %s is not read by its config", addr, k)
			}
		}
		for _, k := range sortedKeys(rule.Plain) {
			v, ok := Index(f.env, k)
			if !ok {
				c.add(RuleEnv, p, "%s: %s is not set", addr, k)
				continue
			}
			if want := rule.Plain[k]; want != "" {
				if got, ok := String(v); !ok || got != want {
					c.add(RuleEnv, p, "%s: %s = %q, want %q", addr, k, got, want)
				}
			}
		}
		for _, k := range rule.Secret {
			if !f.secrets[k] {
				c.add(RuleSecretEnv, f.svc.Pos("secret_environment_variables"), "%s: %s does not come from Secret Manager", addr, k)
			}
		}
		if rule.TimeoutEqual != "" {
			d, ok := c.envDuration(f, rule.TimeoutEqual)
			if ok && f.timeout > 0 && d != time.Duration(f.timeout)*time.Second {
				c.add(RuleEnv, p, "%s: %s = %s, want the function's timeout (%d s)", addr, rule.TimeoutEqual, d, f.timeout)
			}
		}
		if rule.TimeoutBelow != "" {
			d, ok := c.envDuration(f, rule.TimeoutBelow)
			if ok && f.timeout > 0 && d >= time.Duration(f.timeout)*time.Second {
				c.add(RuleEnv, p, "%s: %s = %s is not below the function's timeout (%d s)", addr, rule.TimeoutBelow, d, f.timeout)
			}
		}
	}
	if len(prefixes) > 1 {
		c.add(RuleEnv, "?", "functions disagree on PUBSUB_NAME_PREFIX: %v", sortedKeys(prefixes))
	}
}

func (c *checker) envDuration(f *fnRes, name string) (time.Duration, bool) {
	p := f.svc.Pos("environment_variables")
	v, ok := Index(f.env, name)
	if !ok {
		c.add(RuleEnv, p, "%s: %s is not set", f.in.Addr(), name)
		return 0, false
	}
	s, ok := String(v)
	if !ok {
		c.add(RuleEnv, p, "%s: %s is not known offline", f.in.Addr(), name)
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.add(RuleEnv, p, "%s: %s = %q is not a duration", f.in.Addr(), name, s)
		return 0, false
	}
	return d, true
}

func (c *checker) checkTopics() {
	have := map[string]bool{}
	for _, in := range c.m.Of("google_pubsub_topic") {
		if s, ok := String(c.eval(in.Body(), "name")); ok {
			have[s] = true
		}
	}
	for _, t := range c.e.Topics {
		if !have[c.prefix+t] {
			c.add(RuleTopics, "?", "topic %q is missing", c.prefix+t)
		}
	}
}

func (c *checker) checkSubscriptions() {
	dlq := c.prefix + topology.SubDeadLetter
	parked := c.prefix + topology.SubParked
	pushSAs := map[Ref][]*subscription{}
	runtimeSAs := map[Ref]bool{}
	for _, f := range c.fns {
		if f.sa != nil {
			runtimeSAs[*f.sa] = true
		}
	}
	for _, s := range c.subs {
		addr, p := s.in.Addr(), pos(s.in.Res.Block.DefRange())
		switch {
		case s.name == dlq:
			// The named exception: retries with backoff, then parks.
			if !s.hasDL {
				c.add(RuleDeadLetter, p, "%s (the DLQ function's subscription) has no dead_letter_policy: what it cannot handle must be parked on %s", addr, c.prefix+topology.TopicParked)
			} else if s.dlTopic != c.prefix+topology.TopicParked {
				c.add(RuleDeadLetter, s.body.Pos("dead_letter_policy"), "%s dead-letters to %q, want %q", addr, s.dlTopic, c.prefix+topology.TopicParked)
			}
			if !s.hasRetry || s.minBackoff <= 0 {
				c.add(RuleRetry, p, "%s (the DLQ function's subscription) must retry with a backoff (retry_policy)", addr)
			}
		case s.name == parked && !s.push:
			if s.topic != c.prefix+topology.TopicParked {
				c.add(RuleSubscription, s.body.Pos("topic"), "%s holds %q, want %q", addr, s.topic, c.prefix+topology.TopicParked)
			}
		default:
			if !s.hasDL {
				c.add(RuleDeadLetter, p, "%s has no dead_letter_policy: after %d failed deliveries a message must go to %s", addr, topology.MaxDeliveryAttempts, c.prefix+topology.TopicDeadLetter)
			} else {
				if s.attempts != topology.MaxDeliveryAttempts {
					c.add(RuleDeadLetter, s.body.Pos("dead_letter_policy"), "%s: max_delivery_attempts is %d, want %d", addr, s.attempts, topology.MaxDeliveryAttempts)
				}
				if s.dlTopic != c.prefix+topology.TopicDeadLetter {
					c.add(RuleDeadLetter, s.body.Pos("dead_letter_policy"), "%s dead-letters to %q, want %q", addr, s.dlTopic, c.prefix+topology.TopicDeadLetter)
				}
			}
			want := topology.BackoffSeconds * time.Second
			if !s.hasRetry || s.minBackoff != want || s.maxBackoff != want {
				c.add(RuleRetry, p, "%s: retry backoff is %s..%s (retry_policy set: %v), want %s..%s", addr, s.minBackoff, s.maxBackoff, s.hasRetry, want, want)
			}
		}
		if exp, ok := s.body.Block("expiration_policy"); !ok {
			c.add(RuleExpiration, p, "%s has no expiration_policy: Pub/Sub deletes a subscription idle for 31 days", addr)
		} else if ttl, ok := String(c.eval(exp, "ttl")); !ok || ttl != "" {
			c.add(RuleExpiration, exp.Pos("ttl"), "%s expires (ttl %q): set ttl = \"\"", addr, ttl)
		}
		if s.hasDL && s.ack > 0 && s.maxBackoff > 0 && s.attempts > 0 {
			need := time.Duration(s.attempts) * (s.maxBackoff + time.Duration(s.ack)*time.Second)
			if s.retention < need {
				c.add(RuleRetention, s.body.Pos("message_retention_duration"), "%s keeps messages %s, less than %d deliveries need (%s)", addr, s.retention, s.attempts, need)
			}
		}
		if !s.push {
			continue
		}
		if s.fn == nil {
			c.add(RuleSubscription, s.body.Pos("push_config"), "%s pushes to no function of this module", addr)
		} else if s.ack < s.fn.timeout || s.ack > maxAckDeadlineSeconds {
			c.add(RuleAckDeadline, s.body.Pos("ack_deadline_seconds"), "%s: ack deadline %d s, want between %s's timeout (%d s) and %d s", addr, s.ack, s.fn.in.Addr(), s.fn.timeout, maxAckDeadlineSeconds)
		}
		switch {
		case s.pushSA == nil:
			c.add(RulePushAuth, s.body.Pos("push_config"), "%s pushes without an OIDC token of a service account of this module", addr)
		case runtimeSAs[*s.pushSA]:
			c.add(RulePushAuth, s.body.Pos("push_config"), "%s pushes as %s, a function's runtime identity: use a dedicated one", addr, s.pushSA.Addr())
		default:
			pushSAs[*s.pushSA] = append(pushSAs[*s.pushSA], s)
		}
	}
	for _, ref := range sortedRefs(pushSAs) {
		if ss := pushSAs[ref]; len(ss) > 1 {
			c.add(RulePushAuth, pos(ss[1].in.Res.Block.DefRange()), "%d subscriptions push as %s: each needs its own identity, invoker on its function only", len(ss), ref.Addr())
		}
	}

	for _, f := range c.e.Functions {
		if f.Kind == topology.KindScheduled {
			c.checkScheduled(f)
			continue
		}
		var subs []*subscription
		for _, s := range c.subs {
			if s.fn != nil && s.fn.entry == f.EntryPoint {
				subs = append(subs, s)
			}
		}
		if len(subs) == 0 {
			c.add(RuleSubscriptionGone, "?", "%s is Pub/Sub-driven but no push subscription targets it (want %q on %q)", f.EntryPoint, c.prefix+f.Subscription, c.prefix+f.Topic)
			continue
		}
		if len(subs) > 1 {
			c.add(RuleSubscription, pos(subs[1].in.Res.Block.DefRange()), "%d subscriptions push to %s: every message would run it more than once", len(subs), f.EntryPoint)
		}
		s := subs[0]
		addr := s.in.Addr()
		if s.name != c.prefix+f.Subscription {
			c.add(RuleSubscription, s.body.Pos("name"), "%s is named %q, want %q (shared/topology)", addr, s.name, c.prefix+f.Subscription)
		}
		if s.topic != c.prefix+f.Topic {
			c.add(RuleSubscription, s.body.Pos("topic"), "%s reads %q, want %q", addr, s.topic, c.prefix+f.Topic)
		}
		if s.hasDL && s.attempts != int64(f.MaxDeliveryAttempts) && f.MaxDeliveryAttempts != topology.MaxDeliveryAttempts {
			c.add(RuleDeadLetter, s.body.Pos("dead_letter_policy"), "%s: max_delivery_attempts is %d, want %d", addr, s.attempts, f.MaxDeliveryAttempts)
		}
	}
}

func (c *checker) checkScheduled(f topology.Function) {
	for _, in := range c.m.Of("google_cloud_scheduler_job") {
		b := in.Body()
		ht, ok := b.Block("http_target")
		if !ok {
			continue
		}
		r := firstRef(c.eval(ht, "uri"), "google_cloudfunctions2_function")
		if r == nil || c.byRef[*r] == nil || c.byRef[*r].entry != f.EntryPoint {
			continue
		}
		oidc, ok := ht.Block("oidc_token")
		if !ok || firstRef(c.eval(oidc, "service_account_email"), "google_service_account") == nil {
			c.add(RuleScheduler, pos(ht.Range), "%s calls %s without an OIDC token of a service account of this module", in.Addr(), f.EntryPoint)
		}
		return
	}
	c.add(RuleScheduler, "?", "%s is scheduled but no google_cloud_scheduler_job calls it", f.EntryPoint)
}

// checkPubSubAgent: Pub/Sub moves a message to the dead-letter topic as its
// service agent, which must publish there and subscribe to the source.
func (c *checker) checkPubSubAgent() {
	for _, s := range c.subs {
		if !s.hasDL {
			continue
		}
		var sub, pub bool
		for _, g := range c.grants {
			agent := false
			for _, mv := range g.members {
				agent = agent || isPubSubAgent(mv)
			}
			if !agent {
				continue
			}
			if g.role == "roles/pubsub.subscriber" && g.on(s.in.Ref()) {
				sub = true
			}
			if g.role == "roles/pubsub.publisher" && s.dlTopicRef != nil && g.on(*s.dlTopicRef) {
				pub = true
			}
		}
		p := pos(s.in.Res.Block.DefRange())
		if !sub {
			c.add(RulePubSubAgent, p, "the Pub/Sub service agent has no roles/pubsub.subscriber on %s: it cannot dead-letter its messages", s.in.Addr())
		}
		if !pub {
			c.add(RulePubSubAgent, p, "the Pub/Sub service agent has no roles/pubsub.publisher on %q, the dead-letter topic of %s", s.dlTopic, s.in.Addr())
		}
	}
}

var invokerRoles = map[string]bool{"roles/run.invoker": true, "roles/cloudfunctions.invoker": true}

// checkInvokers: each push identity (and the scheduler's) may invoke exactly
// its own function, and nobody else may invoke any function.
func (c *checker) checkInvokers() {
	allowed := map[Ref]map[Ref]string{} // function -> identity -> who uses it
	allow := func(fn Ref, sa *Ref, who string) {
		if sa == nil {
			return
		}
		if allowed[fn] == nil {
			allowed[fn] = map[Ref]string{}
		}
		allowed[fn][*sa] = who
	}
	for _, s := range c.subs {
		if s.fn != nil {
			allow(s.fn.in.Ref(), s.pushSA, s.in.Addr())
		}
	}
	for _, in := range c.m.Of("google_cloud_scheduler_job") {
		b := in.Body()
		if ht, ok := b.Block("http_target"); ok {
			if r := firstRef(c.eval(ht, "uri"), "google_cloudfunctions2_function"); r != nil {
				if oidc, ok := ht.Block("oidc_token"); ok {
					allow(*r, firstRef(c.eval(oidc, "service_account_email"), "google_service_account"), in.Addr())
				}
			}
		}
	}
	granted := map[[2]Ref]bool{}
	for _, g := range c.grants {
		if !invokerRoles[g.role] {
			continue
		}
		p := pos(g.in.Res.Block.DefRange())
		if strings.HasPrefix(g.in.Res.Type, "google_project_iam") {
			c.add(RuleInvoker, p, "%s grants %s on the whole project: grant it on one function", g.in.Addr(), g.role)
			continue
		}
		var fns []Ref
		for _, t := range g.target {
			if t.Type == "google_cloudfunctions2_function" {
				fns = append(fns, t)
			}
		}
		if len(fns) == 0 {
			c.add(RuleInvoker, p, "%s grants %s on something that is not a function of this module", g.in.Addr(), g.role)
			continue
		}
		for _, fn := range fns {
			for _, mv := range g.members {
				sa := firstRef(mv, "google_service_account")
				if sa == nil {
					s, _ := String(mv)
					c.add(RuleInvoker, p, "%s lets %q invoke %s: only its push subscription's or scheduler's identity may", g.in.Addr(), s, fn.Addr())
					continue
				}
				if _, ok := allowed[fn][*sa]; !ok {
					c.add(RuleInvoker, p, "%s lets %s invoke %s, but it neither pushes to nor schedules it", g.in.Addr(), sa.Addr(), fn.Addr())
					continue
				}
				granted[[2]Ref{fn, *sa}] = true
			}
		}
	}
	for _, fn := range sortedRefs(allowed) {
		for _, sa := range sortedRefs(allowed[fn]) {
			if !granted[[2]Ref{fn, sa}] {
				c.add(RuleInvoker, "?", "%s calls %s as %s, which has no roles/run.invoker on it", allowed[fn][sa], fn.Addr(), sa.Addr())
			}
		}
	}
}

var public = []string{"allUsers", "allAuthenticatedUsers"}

// checkPublicIAM fails any grant to allUsers or allAuthenticatedUsers, by
// value or by any string literal in an IAM resource or policy document.
func (c *checker) checkPublicIAM() {
	for _, g := range c.grants {
		for _, mv := range g.members {
			if s, ok := String(mv); ok && isPublic(s) {
				c.add(RulePublicIAM, pos(g.in.Res.Block.DefRange()), "%s grants %s to %s", g.in.Addr(), g.role, s)
			}
		}
	}
	for _, r := range c.m.Resources {
		iam := strings.Contains(r.Type, "_iam_") || r.Type == "google_iam_policy" || strings.HasSuffix(r.Type, "_acl")
		if !iam {
			continue
		}
		hclsyntax.VisitAll(r.Block.Body, func(n hclsyntax.Node) hcl.Diagnostics {
			lit, ok := n.(*hclsyntax.LiteralValueExpr)
			if !ok || lit.Val.Type() != cty.String {
				return nil
			}
			for _, p := range public {
				if strings.Contains(lit.Val.AsString(), p) {
					c.add(RulePublicIAM, pos(lit.SrcRange), "%s.%s names %s", r.Type, r.Name, p)
				}
			}
			return nil
		})
	}
	c.dedupe(RulePublicIAM)
}

func isPublic(s string) bool {
	for _, p := range public {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// dedupe keeps one problem of rule per position.
func (c *checker) dedupe(rule string) {
	seen := map[string]bool{}
	out := c.out[:0]
	for _, p := range c.out {
		if p.Rule == rule {
			if seen[p.Pos] {
				continue
			}
			seen[p.Pos] = true
		}
		out = append(out, p)
	}
	c.out = out
}

// Project-wide roles the module may grant; conditioned ones only with an IAM
// condition narrowing them to named resources.
var projectRoles = map[string]bool{
	"roles/logging.logWriter":    false,
	"roles/cloudsql.client":      true,
	"roles/storage.objectViewer": true,
}

func (c *checker) checkProjectIAM() {
	for _, r := range c.m.Resources {
		if r.Mode == "resource" && (r.Type == "google_project_iam_policy" || r.Type == "google_project_iam_binding") {
			c.add(RuleProjectIAM, pos(r.Block.DefRange()), "%s.%s is authoritative: it would remove grants made outside this module", r.Type, r.Name)
		}
	}
	for _, g := range c.grants {
		if g.in.Res.Type != "google_project_iam_member" {
			continue
		}
		p := pos(g.in.Res.Block.DefRange())
		needsCondition, ok := projectRoles[g.role]
		switch {
		case !ok:
			c.add(RuleProjectIAM, p, "%s grants %s on the whole project: grant it on the resource that needs it", g.in.Addr(), g.role)
		case needsCondition && !g.conditioned:
			c.add(RuleProjectIAM, p, "%s grants %s on the whole project without a condition naming the resources", g.in.Addr(), g.role)
		}
	}
}

var readOnlyBucketRoles = map[string]bool{
	"roles/storage.objectViewer":             true,
	"roles/storage.legacyObjectReader":       true,
	"roles/storage.legacyBucketReader":       true,
	"roles/storage.insightsCollectorService": true,
}

func (c *checker) checkBuckets() {
	for _, in := range c.m.Of("google_storage_bucket") {
		b := in.Body()
		if v, ok := Bool(c.eval(b, "uniform_bucket_level_access")); !ok || !v {
			c.add(RuleBucketPrivate, b.Pos("uniform_bucket_level_access"), "%s: uniform_bucket_level_access must be true", in.Addr())
		}
		if v, _ := String(c.eval(b, "public_access_prevention")); v != "enforced" {
			c.add(RuleBucketPrivate, b.Pos("public_access_prevention"), "%s: public_access_prevention is %q, want \"enforced\"", in.Addr(), v)
		}
	}

	var agg *fnRes
	for _, f := range c.fns {
		if f.entry == topology.EntryAggregate {
			agg = f
		}
	}
	if agg == nil {
		return
	}
	v, _ := Index(agg.env, "REPORT_BUCKET")
	ref := firstRef(v, "google_storage_bucket")
	if ref == nil || c.m.Lookup(*ref) == nil {
		c.add(RuleBucketLifecycle, agg.svc.Pos("environment_variables"), "%s: REPORT_BUCKET does not name a bucket of this module", agg.in.Addr())
		return
	}
	bucket := c.m.Lookup(*ref)
	b := bucket.Body()
	deletes := false
	for _, lr := range b.Blocks("lifecycle_rule") {
		act, ok1 := lr.Block("action")
		cond, ok2 := lr.Block("condition")
		if !ok1 || !ok2 {
			continue
		}
		typ, _ := String(c.eval(act, "type"))
		age, ok := Int(c.eval(cond, "age"))
		if typ == "Delete" && ok && age > 0 {
			deletes = true
		}
	}
	if !deletes {
		c.add(RuleBucketLifecycle, pos(b.Range), "%s (the report bucket) has no lifecycle rule deleting reports after a number of days", bucket.Addr())
	}

	fnSAs := map[Ref]string{}
	for _, f := range c.fns {
		if f.sa != nil {
			fnSAs[*f.sa] = f.entry
		}
	}
	for _, g := range c.grants {
		p := pos(g.in.Res.Block.DefRange())
		if g.in.Res.Type == "google_project_iam_member" && strings.HasPrefix(g.role, "roles/storage.") {
			for _, mv := range g.members {
				if sa := firstRef(mv, "google_service_account"); sa != nil && fnSAs[*sa] != "" {
					c.add(RuleBucketWriters, p, "%s grants %s to %s on the whole project", g.in.Addr(), g.role, fnSAs[*sa])
				}
			}
			continue
		}
		if !g.on(*ref) || readOnlyBucketRoles[g.role] {
			continue
		}
		for _, mv := range g.members {
			sa := firstRef(mv, "google_service_account")
			if sa == nil || agg.sa == nil || *sa != *agg.sa {
				who, _ := String(mv)
				if sa != nil {
					who = sa.Addr()
				}
				c.add(RuleBucketWriters, p, "%s lets %s write to the report bucket: only the aggregator may", g.in.Addr(), who)
			}
		}
	}
}

func (c *checker) checkRedis() {
	ins := c.m.Of("google_redis_instance")
	if len(ins) == 0 {
		c.add(RuleRedis, "?", "no google_redis_instance")
	}
	for _, in := range ins {
		b := in.Body()
		if v, ok := Bool(c.eval(b, "auth_enabled")); !ok || !v {
			c.add(RuleRedis, b.Pos("auth_enabled"), "%s: auth_enabled must be true (Redis AUTH)", in.Addr())
		}
		if v, _ := String(c.eval(b, "transit_encryption_mode")); v != "SERVER_AUTHENTICATION" {
			c.add(RuleRedis, b.Pos("transit_encryption_mode"), "%s: transit_encryption_mode is %q, want SERVER_AUTHENTICATION (TLS)", in.Addr(), v)
		}
		policy := ""
		if v, ok := Index(c.eval(b, "redis_configs"), "maxmemory-policy"); ok {
			policy, _ = String(v)
		}
		if policy != "noeviction" {
			c.add(RuleRedis, b.Pos("redis_configs"), "%s: maxmemory-policy is %q, want noeviction (the default volatile-lru evicts live report hashes)", in.Addr(), policy)
		}
	}
}
