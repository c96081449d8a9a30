# Constants shared by every function. The values that are contracts with
# the Go code (functions, listeners, topics, subscriptions, delivery policy,
# the hash TTL) come from topology.json, which `go generate ./shared/topology`
# writes from the report definitions; the rest is checked by tests/.
locals {
  # What the code says the deployment holds (shared/topology.Document):
  # every function, each listener's slug, database and subscription, the
  # topics, the pull subscriptions and the delivery policies. Never edited
  # by hand: a new report.Source in shared/report is a new listener here.
  topology = jsondecode(file("${path.module}/topology.json"))

  # go.mod says "go 1.26.8": the Cloud Functions runtime is "go" + major +
  # minor, go126 (topology.json, from go.mod's go directive).
  go_runtime = local.topology.go_runtime

  # Delivery policy of every push subscription except DeadLetter's own
  # (topology.MaxDeliveryAttempts, topology.BackoffSeconds): 6 deliveries 60 s
  # apart, then report-dead-letter. DeadLetter's exception is its own entry
  # of local.topology.functions.
  push_delivery        = local.topology.push_delivery
  push_backoff_seconds = tonumber(trimsuffix(local.push_delivery.maximum_backoff, "s"))

  # The report hash lives 10 minutes from its last write (a fixed contract,
  # config STATE_TTL). A listener or aggregator that is working refreshes it
  # at least every minute, so only a delivery that stops writing can let it
  # lapse: one that hangs right after a write until its timeout, followed
  # by the 60 s backoff before the next delivery. So timeout + backoff must
  # not exceed the TTL: the timeout variables of the functions that keep the
  # hash alive are capped at state_ttl_seconds - push_backoff_seconds
  # (540 s), and the tests assert it on the planned values.
  state_ttl_seconds = local.topology.state_ttl_seconds

  # Pub/Sub waits this long for a push response. 600 s is the maximum and is
  # at least every function's timeout (variables cap timeouts at 600 s).
  push_ack_deadline_seconds = 600

  # Unacked messages are kept 7 days: far longer than 6 deliveries 60 s apart,
  # each waiting up to the ack deadline (6 x (60 + 600) s = 66 min).
  push_message_retention = "604800s"

  # Parked messages wait for a human: the longest retention Pub/Sub allows.
  parked_message_retention = "2678400s"

  # Every topic, by its name in shared/topology (before PUBSUB_NAME_PREFIX),
  # with its purpose: one per stage the reports use, and the fixed ones.
  topics = local.topology.topics

  # The stage topics in order: DrainTriggers publishes the first, Aggregate
  # fans out the others.
  stage_topics = local.topology.stage_topics

  # Every source database (listeners' and DrainTriggers' split estimates),
  # database => its DSN variable, and with the record database every key
  # the database-keyed variables take.
  source_databases = { for db, d in local.topology.source_databases : db => d.dsn_env }
  databases        = concat(sort(keys(local.source_databases)), ["record"])

  # Signed download URLs are on when they have a lifetime.
  sign_urls = var.signed_url_ttl_seconds > 0

  # The project's number names its service agents. Given (project_number),
  # nothing is read; else it is read from the project at plan time.
  project_number = coalesce(var.project_number, one(data.google_project.this[*].number))

  # The Pub/Sub service agent pushes, dead-letters and signs OIDC tokens.
  pubsub_agent = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Cloud Run's service agent uses a Shared VPC host's subnet.
  run_agent = "serviceAccount:service-${local.project_number}@serverless-robot-prod.iam.gserviceaccount.com"

  # Every resource that takes labels gets these.
  labels = var.labels
}

# Read at plan time, before this module has enabled any API: it needs the
# Cloud Resource Manager API already on in the project that pays for the
# deployer's calls (the deployer's quota project, or the project itself).
# project_number avoids the read (README.md, Deploy).
data "google_project" "this" {
  count = var.project_number == null ? 1 : 0

  project_id = var.project_id
}
