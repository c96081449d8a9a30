package tfcheck

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// The listener a new report.Source would add: on a stage no report has
// yet (a new stage topic), reading plt_user (whose default connection
// budget has room for it).
const (
	newEP    = "ListenUserProfile"
	newSlug  = "profile"
	newSub   = "listen-user-profile"
	newTopic = "report-stage-3"
)

// addListener adds newEP to a topology.json document as `go generate
// ./shared/topology` would write it for a new source: its function, its
// listener entry, its stage topic and its database's listener list. (The
// generator's own output for a new source is TestDocumentMatchesFunctions'
// in shared/topology.)
func addListener(t *testing.T, doc map[string]any) {
	t.Helper()
	obj := func(m map[string]any, k string) map[string]any {
		v, ok := m[k].(map[string]any)
		if !ok {
			t.Fatalf("topology.json: %s is not an object", k)
		}
		return v
	}
	obj(doc, "listeners")[newEP] = map[string]any{
		"slug": newSlug, "source": "plt_user.vs_user_profile", "database": "plt_user", "dsn_env": "DSN_PLT_USER",
		"stage": 3, "topic": newTopic, "subscription": newSub,
	}
	obj(doc, "functions")[newEP] = map[string]any{
		"kind": "push", "topic": newTopic, "subscription": newSub, "delivery": doc["push_delivery"],
	}
	obj(doc, "topics")[newTopic] = map[string]any{"purpose": "stage 3 fanout: the listeners of stage 3 subscribe"}
	stages, _ := doc["stage_topics"].([]any)
	doc["stage_topics"] = append(stages, newTopic)
	db := obj(obj(doc, "source_databases"), "plt_user")
	ls, _ := db["listeners"].([]any)
	db["listeners"] = append(ls, newEP)
}

// TestNewListenerNeedsNoTerraformEdit: a listener that exists only in
// topology.json, as a new report.Source puts it there, is deployed whole
// by the module as it is, no .tf file edited: its function (its entry
// point, its own runtime identity, its database's DSN secret), its push
// subscription on a new stage topic with the dead-letter policy, its push
// identity with the invoker grant, the Pub/Sub agent's grants, its
// secret grant, its database's egress, and Aggregate's grant on the new
// stage topic. tests/defaults.tftest.hcl, which builds the listeners'
// expectations from topology.json, passes on it too.
func TestNewListenerNeedsNoTerraformEdit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := Prepare(ctx, root, t.TempDir())
	if errors.Is(err, ErrSkipped) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(mod, "topology.json")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["listeners"].(map[string]any)[newEP]; ok {
		t.Fatalf("topology.json already has %s: pick another name for the test's listener", newEP)
	}
	addListener(t, doc)
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	// And the mock values go generate writes with it.
	var d topology.Document
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "tests", "mocks", "topology.tfmock.hcl"), topology.Mocks(d), 0o644); err != nil {
		t.Fatal(err)
	}

	runs, err := Test(ctx, mod, "-filter="+planFile)
	if err != nil {
		t.Fatal(err)
	}
	var plan *Plan
	for _, r := range runs {
		if r.Status != "pass" {
			t.Errorf("%s %s: %s with the new listener:\n%s", r.File, r.Name, r.Status, strings.Join(r.Failures, "\n"))
		}
		if r.Name == planRun {
			plan = r.Plan
		}
	}
	if plan == nil {
		t.Fatal("terraform test printed no plan")
	}

	one := func(typ, name, key string) map[string]any {
		for _, r := range plan.Of(typ, name) {
			if r.Key() == key {
				return r.Change.After
			}
		}
		t.Errorf("the plan has no %s.%s[%q]", typ, name, key)
		return nil
	}
	const sa = "@test-project.iam.gserviceaccount.com"

	fn := one("google_cloudfunctions2_function", "function", newEP)
	if b, s := first(fn, "build_config"), first(fn, "service_config"); b == nil || s == nil {
		t.Errorf("%s: no build or service config", newEP)
	} else {
		if got := str(b, "entry_point"); got != newEP {
			t.Errorf("%s builds entry point %q", newEP, got)
		}
		if got := str(s, "service_account_email"); got != "fanout-"+newSlug+sa {
			t.Errorf("%s runs as %q, want its own fanout-%s", newEP, got, newSlug)
		}
		secrets := map[string]string{}
		for _, v := range list(s, "secret_environment_variables") {
			secrets[str(v, "key")] = str(v, "secret")
		}
		if secrets["DSN_PLT_USER"] != "fanout-dsn-plt-user" || secrets["DSN_PLT_FUND"] != "" || secrets["RECORD_DSN"] != "" {
			t.Errorf("%s mounts %v: want its own database's DSN secret (DSN_PLT_USER) and no other DSN", newEP, secrets)
		}
	}

	sub := one("google_pubsub_subscription", "push", newEP)
	dl, rp := first(sub, "dead_letter_policy"), first(sub, "retry_policy")
	switch {
	case sub == nil:
	case str(sub, "name") != newSub || !strings.HasSuffix(str(sub, "topic"), "/topics/"+newTopic):
		t.Errorf("push subscription %q on %q, want %q on %q", str(sub, "name"), str(sub, "topic"), newSub, newTopic)
	case !strings.HasSuffix(str(dl, "dead_letter_topic"), "/topics/report-dead-letter") || num(dl, "max_delivery_attempts") != 6:
		t.Errorf("%s dead-letters to %q after %d deliveries, want report-dead-letter after 6", newSub, str(dl, "dead_letter_topic"), num(dl, "max_delivery_attempts"))
	case str(rp, "minimum_backoff") != "60s" || str(rp, "maximum_backoff") != "60s":
		t.Errorf("%s retries %s..%s apart, want 60s", newSub, str(rp, "minimum_backoff"), str(rp, "maximum_backoff"))
	case str(first(first(sub, "push_config"), "oidc_token"), "service_account_email") != "fanout-"+newSlug+"-push"+sa:
		t.Errorf("%s pushes as %q, want fanout-%s-push", newSub, str(first(first(sub, "push_config"), "oidc_token"), "service_account_email"), newSlug)
	}
	one("google_pubsub_topic", "topic", newTopic)
	if got := str(one("google_service_account", "listener", newEP), "account_id"); got != "fanout-"+newSlug {
		t.Errorf("runtime service account %q, want fanout-%s", got, newSlug)
	}
	if got := str(one("google_service_account", "listener_push", newEP), "account_id"); got != "fanout-"+newSlug+"-push" {
		t.Errorf("push service account %q, want fanout-%s-push", got, newSlug)
	}

	// The grants, from the iam_grants output every IAM resource feeds
	// (checkIAMTable).
	var grants map[string]any
	if oc, ok := plan.Outputs["iam_grants"]; ok {
		grants, _ = oc.After.(map[string]any)
	}
	has := func(member, grant string) {
		for _, g := range listOf(grants[member]) {
			if g == grant {
				return
			}
		}
		t.Errorf("%s lacks %q; has %v", member, grant, grants[member])
	}
	runtime, push, agent := "serviceAccount:fanout-"+newSlug+sa, "serviceAccount:fanout-"+newSlug+"-push"+sa, "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"
	has(runtime, "roles/secretmanager.secretAccessor on secret fanout-dsn-plt-user")
	has(runtime, "roles/pubsub.publisher on topic report-aggregate")
	has(push, "roles/run.invoker on service fanout-"+newSub)
	has(agent, "roles/pubsub.subscriber on subscription "+newSub)
	has(agent, "roles/iam.serviceAccountTokenCreator on service account projects/test-project/serviceAccounts/fanout-"+newSlug+"-push"+sa)
	has("serviceAccount:fanout-aggregate"+sa, "roles/pubsub.publisher on topic "+newTopic)

	// Its database's egress names it; the record database's does not.
	tags := func(rule string) []string {
		var out []string
		for _, v := range listOf(one("google_compute_firewall", "egress_allow", rule)["target_tags"]) {
			s, _ := v.(string)
			out = append(out, s)
		}
		return out
	}
	if tg := tags("db-plt-user"); !slices.Contains(tg, "fanout-"+newSlug) {
		t.Errorf("egress to plt_user is for %v, not fanout-%s", tg, newSlug)
	}
	if tg := tags("db-record"); slices.Contains(tg, "fanout-"+newSlug) {
		t.Errorf("the new listener may reach the record database: %v", tg)
	}
}
