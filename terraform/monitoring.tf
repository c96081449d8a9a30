# Alerts an operator acts on. Every policy notifies var.notification_channels.

locals {
  push_subscription_regex = "(${join("|", [for s in values(google_pubsub_subscription.push) : s.name])})"
  function_regex          = "(${join("|", [for f in values(google_cloudfunctions2_function.function) : f.name])})"
}

# A report failed 6 deliveries (or the DLQ function itself gave up and parked
# its message): somebody should look at the record and the logs.
resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "${var.name}: messages dead-lettered"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "A push subscription dead-lettered a message"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.label.subscription_id = monitoring.regex.full_match(\"${local.push_subscription_regex}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.subscription_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "Messages are waiting in ${var.pubsub_name_prefix}report-parked-hold"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id = \"${google_pubsub_subscription.parked_hold.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A message failed every delivery. Dead letters on `report-dead-letter` mark their record FAILED (DeadLetter function); anything on `report-parked` could not be handled at all. Inspect with `gcloud pubsub subscriptions pull ${google_pubsub_subscription.parked_hold.name}` (without --auto-ack) and the function logs."
  }

  depends_on = [google_project_service.this]
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  display_name          = "${var.name}: push subscription backlog is old"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Oldest undelivered message per subscription"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.label.subscription_id = monitoring.regex.full_match(\"${local.push_subscription_regex}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_oldest_unacked_seconds
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.subscription_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A push subscription holds a message older than ${var.alert_oldest_unacked_seconds} s: its function is failing or too slow, or it hit max_instance_count. Check the function's errors and instance count."
  }

  depends_on = [google_project_service.this]
}

resource "google_monitoring_alert_policy" "redis_memory" {
  display_name          = "${var.name}: Redis memory high"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Memorystore memory usage ratio"

    condition_threshold {
      filter          = "resource.type = \"redis_instance\" AND metric.type = \"redis.googleapis.com/stats/memory/usage_ratio\" AND resource.label.instance_id = \"${google_redis_instance.state.id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_redis_memory_ratio
      duration        = "300s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Memorystore runs with maxmemory-policy noeviction: when full, report writes fail and retry instead of evicting live reports. Raise redis_memory_size_gb or lower the listeners' max_instance_count."
  }

  depends_on = [google_project_service.this]
}

resource "google_monitoring_alert_policy" "function_errors" {
  display_name          = "${var.name}: function error rate"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Share of 5xx responses per function"

    condition_threshold {
      filter             = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.label.response_code_class = \"5xx\" AND resource.label.service_name = monitoring.regex.full_match(\"${local.function_regex}\")"
      denominator_filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND resource.label.service_name = monitoring.regex.full_match(\"${local.function_regex}\")"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_function_error_ratio
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function answers 5xx to more than ${var.alert_function_error_ratio * 100}% of requests. Each 5xx is a Pub/Sub retry; after 6 the message dead-letters. See the function's logs (severity ERROR, recordId, stage, source)."
  }

  depends_on = [google_project_service.this]
}
