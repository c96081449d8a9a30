# DeadLetter: push subscription "dead-letter" on report-dead-letter. Marks the
# record FAILED with a reason naming the stage and listener, announces it on
# report-completed, and parks what it cannot attribute on report-parked. The
# function itself, its push subscription and the grants its entry implies
# are in functions.tf and iam.tf.

locals {
  # The named exception to local.push_delivery (6 deliveries 60 s apart):
  # marking a record FAILED must not itself be dropped, so it retries with
  # exponential backoff for longer and then parks the message on
  # report-parked (held by report-parked-hold) instead of losing it.
  # (topology.DeadLetterMaxDeliveryAttempts and the DLQ backoff bounds.)
  dead_letter_delivery = local.topology.functions.DeadLetter.delivery

  dead_letter_function = {
    DeadLetter = {
      name            = "${var.name}-dead-letter"
      slug            = "dead-letter"
      description     = "Marks records FAILED for dead-lettered messages (entry point DeadLetter)."
      service_account = google_service_account.dead_letter
      memory          = "256Mi"
      # Cloud Run serves more than one request per instance only with a
      # whole CPU. Each request is one record update, so a few instances
      # serving many requests each cover max_in_flight without holding
      # more database connections.
      cpu              = var.dead_letter_concurrency > 1 ? "1" : null
      timeout_seconds  = var.dead_letter_timeout_seconds
      max_instances    = var.dead_letter_max_instances
      concurrency      = var.dead_letter_concurrency
      database         = "record"
      source_databases = {}
      amqp             = false
      # A failed report's part segments (tmp/reports/{id}/) are deleted
      # from the report bucket (iam.tf: delete under tmp/ only).
      env        = { REPORT_BUCKET = google_storage_bucket.reports.name }
      dsn_env    = "RECORD_DSN"
      secrets    = {}
      publishes  = ["report-parked", "report-completed"]
      subscribes = []
      announces  = true
      push = {
        subscription = local.topology.functions.DeadLetter.subscription
        topic        = local.topology.functions.DeadLetter.topic
        identity     = google_service_account.dead_letter_push
        delivery     = local.dead_letter_delivery
      }
      schedule = null
    }
  }
}

resource "google_service_account" "dead_letter" {
  project      = var.project_id
  account_id   = "${var.name}-dead-letter"
  display_name = "fanout export: DeadLetter function"

  depends_on = [google_project_service.this]
}

resource "google_service_account" "dead_letter_push" {
  project      = var.project_id
  account_id   = "${var.name}-dead-letter-push"
  display_name = "fanout export: pushes report-dead-letter to DeadLetter"

  depends_on = [google_project_service.this]
}
