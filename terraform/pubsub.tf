# Topics of shared/topology and the pull subscriptions. Each function's
# push subscription is made in functions.tf from its entry; the grants on
# topics and subscriptions are in iam.tf.

resource "google_pubsub_topic" "topic" {
  for_each = local.topics

  project = var.project_id
  name    = "${var.pubsub_name_prefix}${each.key}"
  labels  = local.labels

  # Parked messages can be replayed (seek) for the whole retention.
  message_retention_duration = each.key == "report-parked" ? local.parked_message_retention : null

  depends_on = [google_project_service.this]
}

locals {
  # Pull subscriptions, by name before PUBSUB_NAME_PREFIX. Neither has a
  # dead-letter policy: report-parked-hold is the end of the line, and a
  # completion event DrainTriggers cannot forward yet waits (the backlog alert
  # in monitoring.tf fires when it waits too long).
  # Ops inspect parked messages (report-parked-hold) by pulling without
  # acking: they are kept as long as Pub/Sub allows. DrainTriggers forwards
  # completion events (report-completed-amqp) to RabbitMQ's
  # COMPLETED_EXCHANGE on every tick (about once a minute).
  pull_subscriptions = {
    for s, p in local.topology.pull_subscriptions : s => {
      topic     = p.topic
      retention = p.topic == "report-parked" ? local.parked_message_retention : local.push_message_retention
    }
  }
}

resource "google_pubsub_subscription" "pull" {
  for_each = local.pull_subscriptions

  project = var.project_id
  name    = "${var.pubsub_name_prefix}${each.key}"
  topic   = google_pubsub_topic.topic[each.value.topic].id

  labels                     = local.labels
  ack_deadline_seconds       = 60
  message_retention_duration = each.value.retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub creates its service agent when the API is enabled, but it may not
# be visible to IAM at once; granting it roles before then fails the apply.
# google_project_service_identity would create it explicitly, but only the
# google-beta provider has it. Waits once, on the first apply.
resource "time_sleep" "pubsub_agent" {
  create_duration = "${var.iam_propagation_seconds}s"

  triggers = {
    pubsub_api = google_project_service.this["pubsub.googleapis.com"].id
  }
}
