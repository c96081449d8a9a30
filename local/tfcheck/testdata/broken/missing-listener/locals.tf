# Literal maps and constants. The offline check (local/tfcheck) evaluates
# these without a provider, so every for_each in this module iterates a map
# whose keys are written here, never computed from resources.
locals {
  # go.mod says "go 1.26.8": the Cloud Functions runtime is "go" + major + minor.
  go_runtime = "go126"

  # Delivery policy of every push subscription except the DLQ function's own
  # (topology.MaxDeliveryAttempts, topology.BackoffSeconds).
  max_delivery_attempts = 6
  retry_backoff         = "60s"

  # The DLQ subscription is the named exception: exponential backoff, then it
  # parks what it cannot handle on report-parked, so nothing is lost.
  dead_letter_max_delivery_attempts = 20
  dead_letter_min_backoff           = "10s"
  dead_letter_max_backoff           = "600s"

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

  # One listener function per source table, keyed by its entry point
  # (report.Sources in shared/report/source.go).
  listeners = {
    ListenUserTagRelation = {
      slug         = "user-tag"
      subscription = "listen-user-tag-relation"
      topic        = "report-stage-1"
      database     = "plt_user"
      dsn_env      = "DSN_PLT_USER"
    }
    ListenWithdraw = {
      slug         = "withdraw"
      subscription = "listen-withdraw"
      topic        = "report-stage-1"
      database     = "plt_fund"
      dsn_env      = "DSN_PLT_FUND"
    }
  }

  # Topics each function publishes to; its service account may publish to
  # these and nothing else.
  listener_publishes    = ["report-aggregate", "report-parked"]
  aggregate_publishes   = ["report-stage-2", "report-parked"]
  drain_publishes       = ["report-stage-1", "report-parked"]
  dead_letter_publishes = ["report-parked"]

  # Firewall targets for Direct VPC egress.
  function_tag = "${var.name}-fn"
  drain_tag    = "${var.name}-drain"

  # The Pub/Sub service agent pushes, dead-letters and signs OIDC tokens.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Environment every function reads (shared/config: PubSub and Redis).
  common_env = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    PUBSUB_NAME_PREFIX   = var.pubsub_name_prefix
    REDIS_ADDR           = "${google_redis_instance.state.host}:${google_redis_instance.state.port}"
    REDIS_TLS            = "true"
  }

  # Open connections per database at full scale-out, checked against
  # var.db_connection_limits by preconditions on the functions.
  db_connections = {
    plt_user = sum(concat([0], [for ep, l in local.listeners : var.listener_max_instances[ep] if l.database == "plt_user"])) * var.db_connections_per_instance
    plt_fund = sum(concat([0], [for ep, l in local.listeners : var.listener_max_instances[ep] if l.database == "plt_fund"])) * var.db_connections_per_instance
    record   = (1 + var.aggregate_max_instances + var.dead_letter_max_instances) * var.db_connections_per_instance
  }
}

data "google_project" "this" {
  project_id = var.project_id
}
