package tfcheck

import (
	"fmt"
	"sort"
	"strings"
)

// RuleFirstApply reports an order of creation under which the first apply on
// a fresh project fails: a resource created before the API it calls, a
// function built or started before the grants it uses have propagated, a
// push or a scheduled call before its invoker grant has, a grant to the
// Pub/Sub or Cloud Run service agent before the agent exists, Memorystore
// created before the external secrets are known to be there; or an order
// that makes more wait than must: the functions waiting for the Pub/Sub
// agent. A plan does not show the order, so terraform test cannot see it;
// `terraform graph` does.
const RuleFirstApply = "first-apply"

const apis = "google_project_service.this"

// noAPI are the resources that may start before the APIs are enabled, and
// why.
var noAPI = map[string]string{
	"data.archive_file.source": "zips a local directory",
	"data.google_project.this": "read at plan time, billed to the caller's quota project",
	// The deployer made these secrets, so Secret Manager is on; reading
	// them at plan time is the point (a missing one fails the plan).
	"data.google_secret_manager_secret_version.external": "read at plan time: the secrets exist, so their API is on",
}

// waits: each resource must wait, directly or not, for each of these.
var waits = map[string][]string{
	"google_cloudfunctions2_function.function": {"time_sleep.iam_propagation"},
	"time_sleep.iam_propagation": {
		"google_project_iam_member.grant",                      // build logs, trace, Cloud SQL
		"google_artifact_registry_repository_iam_member.grant", // the build's image push
		"google_secret_manager_secret_iam_member.grant",        // the first secret reads
		"google_storage_bucket_iam_member.grant",               // the build's source, report writes, signed URLs
		"google_service_account_iam_member.grant",              // signing
		"google_pubsub_topic_iam_member.grant",                 // publishing
		"google_compute_subnetwork_iam_member.grant",           // Direct VPC egress into a Shared VPC
	},
	"google_pubsub_subscription.push":      {"time_sleep.invoker_propagation", "time_sleep.agent_propagation"},
	"google_cloud_scheduler_job.scheduled": {"time_sleep.invoker_propagation"},
	"time_sleep.invoker_propagation":       {"google_cloud_run_v2_service_iam_member.grant"},
	"time_sleep.agent_propagation": {
		"google_pubsub_topic_iam_member.agent",    // dead letters
		"google_service_account_iam_member.agent", // the push OIDC tokens
	},
	// The grants to the Pub/Sub service agent.
	"google_pubsub_topic_iam_member.agent":        {"time_sleep.pubsub_agent"},
	"google_pubsub_subscription_iam_member.agent": {"time_sleep.pubsub_agent"},
	"google_service_account_iam_member.agent":     {"time_sleep.pubsub_agent"},
	"time_sleep.pubsub_agent":                     {apis},
	// The grant to the Cloud Run service agent (Shared VPC).
	"google_compute_subnetwork_iam_member.grant": {"time_sleep.run_agent"},
	"time_sleep.run_agent":                       {apis},
	// Nothing that takes 15 minutes is created before the secrets check.
	"google_redis_instance.state": {"data.google_secret_manager_secret_version.external"},
}

// waitsNot: each resource must not wait for these (more would wait than
// needs to: a Pub/Sub agent that is late would hold every build).
var waitsNot = map[string][]string{
	"google_cloudfunctions2_function.function": {"time_sleep.pubsub_agent"},
	"time_sleep.iam_propagation":               {"time_sleep.pubsub_agent"},
	"google_cloud_scheduler_job.scheduled":     {"time_sleep.pubsub_agent"},
}

// CheckFirstApply checks the dependency graph of `terraform graph`.
func CheckFirstApply(g map[string][]string) []Problem {
	reaches := func(from, to string) bool {
		seen := map[string]bool{}
		stack := []string{from}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, next := range g[n] {
				if next == to {
					return true
				}
				if !seen[next] {
					seen[next] = true
					stack = append(stack, next)
				}
			}
		}
		return false
	}
	var out []Problem
	for _, n := range sortedKeys(g) {
		if n == apis || strings.HasPrefix(n, "time_sleep.") || noAPI[n] != "" {
			continue
		}
		if !reaches(n, apis) {
			out = append(out, Problem{RuleFirstApply, fmt.Sprintf("%s does not wait for the APIs (%s)", n, apis)})
		}
	}
	for _, from := range sortedKeys(waits) {
		for _, to := range waits[from] {
			if !reaches(from, to) {
				out = append(out, Problem{RuleFirstApply, fmt.Sprintf("%s does not wait for %s", from, to)})
			}
		}
	}
	for _, from := range sortedKeys(waitsNot) {
		for _, to := range waitsNot[from] {
			if reaches(from, to) {
				out = append(out, Problem{RuleFirstApply, fmt.Sprintf("%s waits for %s, which it does not need", from, to)})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Msg < out[j].Msg })
	return out
}
