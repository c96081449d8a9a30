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

  expiration_policy {
    ttl = ""
  }
}
