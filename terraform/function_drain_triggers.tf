# DrainTriggers, the MQ1 shim. Cloud Functions only run during a request, so
# Cloud Scheduler calls this HTTP function every minute; each call consumes
# report.trigger for DRAIN_FOR (50 s), republishes each trigger to
# report-stage-1 (acking only after Pub/Sub confirmed) and returns. One
# instance at most: one drain at a time. The function itself and the grants
# its entry implies are in functions.tf.

locals {
  drain_triggers_function = {
    DrainTriggers = {
      name            = "${var.name}-drain-triggers"
      description     = "Moves report triggers from RabbitMQ to Pub/Sub (entry point DrainTriggers)."
      service_account = google_service_account.drain_triggers
      memory          = "256Mi"
      timeout_seconds = var.drain_triggers_timeout_seconds
      # One consumer at a time; a tick that finds it busy is skipped and the
      # next tick drains what is left.
      max_instances = 1
      database      = "record"
      # Only DrainTriggers may reach RabbitMQ (network.tf).
      network_tags = [local.drain_tag]
      env = {
        DRAIN_FOR     = "${var.drain_for_seconds}s"
        TRIGGER_QUEUE = var.trigger_queue
      }
      secrets = {
        RECORD_DSN = var.record_dsn_secret
        AMQP_URL   = var.amqp_url_secret
      }
      publishes = ["report-stage-1", "report-parked"]
      # Called over HTTP by the scheduler job below, not pushed to.
      push = null
    }
  }
}

resource "google_service_account" "drain_triggers" {
  account_id   = "${var.name}-drain"
  display_name = "fanout export: DrainTriggers function"
}

# The identity Cloud Scheduler presents (OIDC) when calling DrainTriggers.
resource "google_service_account" "drain_scheduler" {
  account_id   = "${var.name}-drain-sched"
  display_name = "fanout export: Cloud Scheduler invoker of DrainTriggers"
}

resource "google_cloud_scheduler_job" "drain_triggers" {
  name        = "${var.name}-drain-triggers"
  region      = var.region
  description = "Calls DrainTriggers, which consumes report.trigger for DRAIN_FOR."
  schedule    = var.drain_schedule
  time_zone   = "Etc/UTC"

  attempt_deadline = "${var.drain_triggers_timeout_seconds}s"

  # A missed tick is covered by the next one a minute later.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function["DrainTriggers"].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.drain_scheduler.email
      audience              = google_cloudfunctions2_function.function["DrainTriggers"].service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.this,
    google_cloud_run_v2_service_iam_member.drain_triggers_invoker,
  ]
}

# The scheduler identity may invoke DrainTriggers and nothing else.
resource "google_cloud_run_v2_service_iam_member" "drain_triggers_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["DrainTriggers"].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.drain_scheduler.email}"
}
