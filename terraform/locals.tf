# Constants shared by every function. The values that are contracts with
# the Go code (names, delivery policy, the hash TTL) are checked against the
# code by local/tfcheck; the rest by the tests in tests/.
locals {
  # go.mod says "go 1.26.8": the Cloud Functions runtime is "go" + major + minor.
  go_runtime = "go126"

  # Delivery policy of every push subscription except the DLQ function's own
  # (topology.MaxDeliveryAttempts, topology.BackoffSeconds): 6 deliveries 60 s
  # apart, then report-dead-letter. DeadLetter's exception is in its file.
  push_delivery = {
    dead_letter_topic     = "report-dead-letter"
    max_delivery_attempts = 6
    minimum_backoff       = "60s"
    maximum_backoff       = "60s"
  }
  push_backoff_seconds = 60

  # The report hash lives 10 minutes from its last write (a fixed contract,
  # config STATE_TTL). A listener or aggregator that is working refreshes it
  # at least every minute, so only a delivery that stops writing can let it
  # lapse: one that hangs right after a write until its timeout, followed
  # by the 60 s backoff before the next delivery. So timeout + backoff must
  # not exceed the TTL: the timeout variables of the functions that keep the
  # hash alive are capped at state_ttl_seconds - push_backoff_seconds
  # (540 s), and the tests assert it on the planned values.
  state_ttl_seconds = 600

  # Pub/Sub waits this long for a push response. 600 s is the maximum and is
  # at least every function's timeout (variables cap timeouts at 600 s).
  push_ack_deadline_seconds = 600

  # Unacked messages are kept 7 days: far longer than 6 deliveries 60 s apart,
  # each waiting up to the ack deadline (6 x (60 + 600) s = 66 min).
  push_message_retention = "604800s"

  # Parked messages wait for a human: the longest retention Pub/Sub allows.
  parked_message_retention = "2678400s"

  # Every topic, by its name in shared/topology (before PUBSUB_NAME_PREFIX).
  topics = {
    "report-stage-1"     = { purpose = "stage 1 fanout (MQ2): every stage-1 listener subscribes" }
    "report-stage-2"     = { purpose = "stage 2 fanout (MQ4): enrichment listeners subscribe" }
    "report-aggregate"   = { purpose = "listener done messages (MQ3) for the aggregator" }
    "report-dead-letter" = { purpose = "messages that failed 6 push deliveries; the DLQ function marks the record FAILED" }
    "report-parked"      = { purpose = "messages nobody can act on, held for inspection" }
    "report-completed"   = { purpose = "a record became final (SUCCESS or FAILED); the shim forwards it to RabbitMQ" }
  }

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
