# Topics of shared/topology. Each function's push subscription lives in the
# function's own file, next to the identity that may invoke it.

resource "google_pubsub_topic" "topic" {
  for_each = local.topics

  name = "${var.pubsub_name_prefix}${each.key}"

  # Parked messages can be replayed (seek) for the whole retention.
  message_retention_duration = each.key == "report-parked" ? local.parked_message_retention : null

  depends_on = [google_project_service.this]
}

# Ops inspect parked messages by pulling without acking; nothing pushes them
# anywhere. It is the parking lot itself, so it has no dead-letter policy.
resource "google_pubsub_subscription" "parked_hold" {
  name  = "${var.pubsub_name_prefix}report-parked-hold"
  topic = google_pubsub_topic.topic["report-parked"].id

  ack_deadline_seconds       = 60
  message_retention_duration = local.parked_message_retention
  retain_acked_messages      = false
}

# Pub/Sub forwards undeliverable messages as its service agent: it must be
# able to publish to each dead-letter topic (report-dead-letter for the
# function subscriptions, report-parked for the DLQ function's own).
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  for_each = toset(["report-dead-letter", "report-parked"])

  topic  = google_pubsub_topic.topic[each.key].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}
