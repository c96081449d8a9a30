# Constants shared by every function. The offline check (local/tfcheck)
# evaluates locals without a provider, so every for_each in this module
# iterates keys written in a locals block (here, or a function's own entry
# in its function_*.tf), never keys computed from resources.
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
  }

  # Firewall targets for Direct VPC egress.
  function_tag = "${var.name}-fn"
  drain_tag    = "${var.name}-drain"

  # The Pub/Sub service agent pushes, dead-letters and signs OIDC tokens.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_project" "this" {
  project_id = var.project_id
}
