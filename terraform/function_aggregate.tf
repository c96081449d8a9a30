# Aggregate: push subscription "aggregate" on report-aggregate. When every
# listener of a stage is done it claims the stage, then fans out the next
# stage (report-stage-2) or joins, writes reports/{id}/{type}.csv to the
# report bucket, marks the record SUCCESS and announces it on
# report-completed. The function itself, its push subscription and the
# grants its entry implies are in functions.tf and iam.tf.

locals {
  aggregate_function = {
    Aggregate = {
      name            = "${var.name}-aggregate"
      slug            = "aggregate"
      description     = "Joins the stage datasets and writes the report CSV (entry point Aggregate)."
      service_account = google_service_account.aggregate
      memory          = var.aggregate_memory
      cpu             = null
      timeout_seconds = var.aggregate_timeout_seconds
      # A delivery per part of each of max_in_flight reports at most,
      # capped by aggregate_max_instances (functions.tf).
      max_instances = min(ceil(local.max_part_deliveries / 1), var.aggregate_max_instances)
      # One join in memory per instance.
      concurrency      = 1
      database         = "record"
      source_databases = {}
      amqp             = false
      env = {
        REPORT_BUCKET = google_storage_bucket.reports.name
        # A claim expires when the function that took it has surely stopped.
        CLAIM_TTL       = "${var.aggregate_timeout_seconds}s"
        MAX_REPORT_ROWS = tostring(var.max_report_rows)
      }
      dsn_env = "RECORD_DSN"
      secrets = {}
      # The stage topics after the first (it fans out the next stage).
      publishes  = concat(slice(local.stage_topics, 1, length(local.stage_topics)), ["report-parked", "report-completed"])
      subscribes = []
      announces  = true
      push = {
        subscription = local.topology.functions.Aggregate.subscription
        topic        = local.topology.functions.Aggregate.topic
        identity     = google_service_account.aggregate_push
        delivery     = local.topology.functions.Aggregate.delivery
      }
      schedule = null
    }
  }
}

resource "google_service_account" "aggregate" {
  project      = var.project_id
  account_id   = "${var.name}-aggregate"
  display_name = "fanout export: Aggregate function"

  depends_on = [google_project_service.this]
}

# The identity Pub/Sub presents (OIDC) when pushing to Aggregate.
resource "google_service_account" "aggregate_push" {
  project      = var.project_id
  account_id   = "${var.name}-aggregate-push"
  display_name = "fanout export: pushes report-aggregate to Aggregate"

  depends_on = [google_project_service.this]
}
