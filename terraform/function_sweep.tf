# Sweep, the sweeper. Cloud Scheduler calls this HTTP function every 5
# minutes; each call ends records stuck in PENDING (republished to
# TRIGGER_QUEUE after SWEEP_PENDING_AFTER, so the in-flight limit applies)
# or PROCESSING (FAILED after SWEEP_PROCESSING_AFTER, or at once when the
# report hash is gone) and announces each record it makes final on
# report-completed. It reads the record database, Redis and RabbitMQ. One
# instance at most; two sweeps at once would do no harm. The function
# itself, its scheduler job and the grants its entry implies are in
# functions.tf and iam.tf.

locals {
  sweep_function = {
    Sweep = {
      name             = "${var.name}-sweep"
      slug             = "sweep"
      description      = "Ends records stuck in PENDING or PROCESSING (entry point Sweep)."
      service_account  = google_service_account.sweep
      memory           = "256Mi"
      cpu              = null
      timeout_seconds  = var.sweep_timeout_seconds
      max_instances    = 1
      concurrency      = 1
      database         = "record"
      source_databases = {}
      amqp             = true
      env = {
        SWEEP_PENDING_AFTER    = var.sweep_pending_after
        SWEEP_PROCESSING_AFTER = var.sweep_processing_after
        TRIGGER_QUEUE          = var.trigger_queue
      }
      dsn_env    = "RECORD_DSN"
      secrets    = { AMQP_URL = var.amqp_url_secret }
      publishes  = ["report-completed"]
      subscribes = []
      announces  = true
      push       = null
      schedule = {
        cron        = var.sweep_schedule
        identity    = google_service_account.sweep_scheduler
        description = "Calls Sweep, which ends records stuck in PENDING or PROCESSING."
      }
    }
  }
}

resource "google_service_account" "sweep" {
  project      = var.project_id
  account_id   = "${var.name}-sweep"
  display_name = "fanout export: Sweep function"

  depends_on = [google_project_service.this]
}

# The identity Cloud Scheduler presents (OIDC) when calling Sweep.
resource "google_service_account" "sweep_scheduler" {
  project      = var.project_id
  account_id   = "${var.name}-sweep-sched"
  display_name = "fanout export: Cloud Scheduler invoker of Sweep"

  depends_on = [google_project_service.this]
}
