# Alerts an operator acts on, the report metrics and their dashboard. Every
# policy notifies var.notification_channels.

locals {
  push_subscription_regex = "(${join("|", [for s in values(google_pubsub_subscription.push) : s.name])})"
  backlog_subscription_regex = "(${join("|", concat(
    [for s in values(google_pubsub_subscription.push) : s.name],
    [google_pubsub_subscription.pull["report-completed-amqp"].name],
  ))})"
  function_regex = "(${join("|", [for f in values(google_cloudfunctions2_function.function) : f.name])})"

  # The log line a function writes when it makes a record final (the
  # contract with the Go code's logging, README.md "Report metrics"): INFO,
  # message "report final", with status, reportType and durationSeconds
  # (created_at to the final update).
  report_final_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${local.function_regex}$\" AND jsonPayload.message=\"report final\""
}

# A message failed every delivery on a push subscription (its record is
# FAILED by DeadLetter), or DeadLetter itself gave up and parked
# its message: somebody should look at the record and the logs. The
# condition is evaluated per subscription (grouped by subscription_id), so
# each incident names its subscription; one condition keeps the policy
# within Cloud Monitoring's 6 conditions however many listeners there are.
resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  user_labels           = local.labels
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
    display_name = "Messages are waiting in ${google_pubsub_subscription.pull["report-parked-hold"].name}"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id = \"${google_pubsub_subscription.pull["report-parked-hold"].name}\""
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
    content   = "A message failed every delivery. Dead letters on `report-dead-letter` mark their record FAILED (DeadLetter function); anything on `report-parked` could not be handled at all. Inspect with `gcloud pubsub subscriptions pull ${google_pubsub_subscription.pull["report-parked-hold"].name}` (without --auto-ack) and the function logs."
  }

  depends_on = [google_project_service.this]
}

# Saturation: Cloud Run answers 429 when every instance of a function is
# busy. Pub/Sub counts that as a failed delivery, 6 of them fail the
# report, so any 429 means max_in_flight is not covered somewhere.
resource "google_monitoring_alert_policy" "throttled" {
  project               = var.project_id
  user_labels           = local.labels
  display_name          = "${var.name}: function answered 429 (saturated)"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "429 responses per function"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.label.response_code = \"429\" AND resource.label.service_name = monitoring.regex.full_match(\"${local.function_regex}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
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
    content   = "A function had every instance busy and refused requests with 429; each refused push is a failed delivery, and 6 fail the report. Raise the function's max instances (or request concurrency) or lower max_in_flight (${var.max_in_flight}); the module requires max instances x concurrency >= max_in_flight for every push function."
  }

  depends_on = [google_project_service.this]
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  project               = var.project_id
  user_labels           = local.labels
  display_name          = "${var.name}: subscription backlog is old"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Oldest undelivered message per subscription"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.label.subscription_id = monitoring.regex.full_match(\"${local.backlog_subscription_regex}\")"
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
    content   = "A subscription holds a message older than ${var.alert_oldest_unacked_seconds} s. A push subscription: its function is failing, too slow, or at max_instance_count. report-completed-amqp: DrainTriggers is not forwarding completion events to RabbitMQ (scheduler, broker or the exchange)."
  }

  depends_on = [google_project_service.this]
}

resource "google_monitoring_alert_policy" "redis_memory" {
  project               = var.project_id
  user_labels           = local.labels
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
    content   = "Memorystore runs with maxmemory-policy noeviction: when full, report writes fail and retry instead of evicting live reports. New reports already wait above REDIS_MEMORY_HIGH_WATER (${var.redis_memory_high_water}). Raise redis_memory_size_gb or lower max_in_flight."
  }

  depends_on = [google_project_service.this]
}

resource "google_monitoring_alert_policy" "function_errors" {
  project               = var.project_id
  user_labels           = local.labels
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

# Report outcomes and durations, from the one log line per final record.
resource "google_logging_metric" "report_outcomes" {
  project     = var.project_id
  name        = "${var.name}/report_outcomes"
  description = "Records that became final, by status (SUCCESS, FAILED) and report type."
  filter      = local.report_final_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} reports finished"

    labels {
      key         = "status"
      value_type  = "STRING"
      description = "SUCCESS or FAILED"
    }
    labels {
      key         = "report_type"
      value_type  = "STRING"
      description = "The record's report_type"
    }
  }

  label_extractors = {
    status      = "EXTRACT(jsonPayload.status)"
    report_type = "EXTRACT(jsonPayload.reportType)"
  }

  depends_on = [google_project_service.this]
}

resource "google_logging_metric" "report_duration" {
  project         = var.project_id
  name            = "${var.name}/report_duration"
  description     = "Seconds from a record's creation to its final status, by status."
  filter          = local.report_final_filter
  value_extractor = "EXTRACT(jsonPayload.durationSeconds)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "${var.name} report duration"

    labels {
      key         = "status"
      value_type  = "STRING"
      description = "SUCCESS or FAILED"
    }
  }

  label_extractors = {
    status = "EXTRACT(jsonPayload.status)"
  }

  # 1 s to about 4.5 h in 16 doubling buckets: a report takes seconds to
  # minutes; the sweeper ends stuck ones after SWEEP_PROCESSING_AFTER.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.this]
}

locals {
  outcome_metric  = "logging.googleapis.com/user/${google_logging_metric.report_outcomes.name}"
  duration_metric = "logging.googleapis.com/user/${google_logging_metric.report_duration.name}"

  dashboard_tiles = [
    {
      title  = "Reports finished, by status"
      chart  = "STACKED_BAR"
      filter = "metric.type=\"${local.outcome_metric}\" resource.type=\"cloud_run_revision\""
      aggregation = {
        alignmentPeriod    = "300s"
        perSeriesAligner   = "ALIGN_SUM"
        crossSeriesReducer = "REDUCE_SUM"
        groupByFields      = ["metric.label.status"]
      }
    },
    {
      title  = "Report duration p95 (s), by status"
      chart  = "LINE"
      filter = "metric.type=\"${local.duration_metric}\" resource.type=\"cloud_run_revision\""
      aggregation = {
        alignmentPeriod    = "300s"
        perSeriesAligner   = "ALIGN_DELTA"
        crossSeriesReducer = "REDUCE_PERCENTILE_95"
        groupByFields      = ["metric.label.status"]
      }
    },
    {
      title  = "Report duration p50 (s), by status"
      chart  = "LINE"
      filter = "metric.type=\"${local.duration_metric}\" resource.type=\"cloud_run_revision\""
      aggregation = {
        alignmentPeriod    = "300s"
        perSeriesAligner   = "ALIGN_DELTA"
        crossSeriesReducer = "REDUCE_PERCENTILE_50"
        groupByFields      = ["metric.label.status"]
      }
    },
    {
      title  = "429 responses (saturation), by function"
      chart  = "STACKED_BAR"
      filter = "metric.type=\"run.googleapis.com/request_count\" resource.type=\"cloud_run_revision\" metric.label.response_code=\"429\" resource.label.service_name=monitoring.regex.full_match(\"${local.function_regex}\")"
      aggregation = {
        alignmentPeriod    = "300s"
        perSeriesAligner   = "ALIGN_DELTA"
        crossSeriesReducer = "REDUCE_SUM"
        groupByFields      = ["resource.label.service_name"]
      }
    },
    {
      title  = "Dead-lettered messages, by subscription"
      chart  = "STACKED_BAR"
      filter = "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" resource.type=\"pubsub_subscription\" resource.label.subscription_id=monitoring.regex.full_match(\"${local.backlog_subscription_regex}\")"
      aggregation = {
        alignmentPeriod    = "300s"
        perSeriesAligner   = "ALIGN_DELTA"
        crossSeriesReducer = "REDUCE_SUM"
        groupByFields      = ["resource.label.subscription_id"]
      }
    },
    {
      title  = "Redis memory usage ratio"
      chart  = "LINE"
      filter = "metric.type=\"redis.googleapis.com/stats/memory/usage_ratio\" resource.type=\"redis_instance\" resource.label.instance_id=\"${google_redis_instance.state.id}\""
      aggregation = {
        alignmentPeriod  = "60s"
        perSeriesAligner = "ALIGN_MAX"
      }
    },
  ]
}

resource "google_monitoring_dashboard" "reports" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name}: report exports"
    mosaicLayout = {
      columns = 12
      tiles = [
        for i, t in local.dashboard_tiles : {
          xPos   = (i % 2) * 6
          yPos   = floor(i / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = t.title
            xyChart = {
              dataSets = [{
                plotType = t.chart
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter      = t.filter
                    aggregation = t.aggregation
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })

  depends_on = [google_project_service.this]
}
