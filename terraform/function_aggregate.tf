# Aggregate: push subscription "aggregate" on report-aggregate. When every
# listener of a stage is done it claims the stage, then fans out the next
# stage (report-stage-2) or joins, writes reports/{id}/{type}.csv to the
# report bucket and marks the record SUCCESS. The function itself, its push
# subscription and the grants its entry implies are in functions.tf.

locals {
  aggregate_function = {
    Aggregate = {
      name            = "${var.name}-aggregate"
      description     = "Joins the stage datasets and writes the report CSV (entry point Aggregate)."
      service_account = google_service_account.aggregate
      memory          = var.aggregate_memory
      timeout_seconds = var.aggregate_timeout_seconds
      max_instances   = var.aggregate_max_instances
      database        = "record"
      network_tags    = []
      env = {
        REPORT_BUCKET = google_storage_bucket.reports.name
        # A claim expires when the function that took it has surely stopped.
        CLAIM_TTL = "${var.aggregate_timeout_seconds}s"
      }
      secrets   = { RECORD_DSN = var.record_dsn_secret }
      publishes = ["report-stage-2", "report-parked"]
      push = {
        subscription = "aggregate"
        topic        = "report-aggregate"
        identity     = google_service_account.aggregate_push
        delivery     = local.push_delivery
      }
    }
  }
}

resource "google_service_account" "aggregate" {
  account_id   = "${var.name}-aggregate"
  display_name = "fanout export: Aggregate function"
}

# The identity Pub/Sub presents (OIDC) when pushing to Aggregate.
resource "google_service_account" "aggregate_push" {
  account_id   = "${var.name}-aggregate-push"
  display_name = "fanout export: pushes report-aggregate to Aggregate"
}

# Writes and, on a takeover, overwrites report objects: create + delete on
# this bucket only. Listeners and the other functions get nothing here.
resource "google_storage_bucket_iam_member" "aggregate_report_writer" {
  bucket = google_storage_bucket.reports.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.aggregate.email}"
}

# Signing V4 URLs with its own identity (no key file): the aggregator may
# mint tokens for itself only.
resource "google_service_account_iam_member" "aggregate_signs_urls" {
  count = var.issue_signed_urls ? 1 : 0

  service_account_id = google_service_account.aggregate.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.aggregate.email}"
}
