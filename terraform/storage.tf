# Report CSVs: reports/{id}/{type}.csv, and the parts' CSV segments under
# tmp/reports/{id}/, written only by the aggregator (iam.tf grants it;
# nothing else may write here; DeadLetter may delete under tmp/).
resource "google_storage_bucket" "reports" {
  project  = var.project_id
  name     = "${var.project_id}-${var.name}-reports"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets
  labels                      = local.labels

  # A takeover overwrites the same object name; old generations are not kept.
  versioning {
    enabled = false
  }

  # A deleted or overwritten report stays recoverable for
  # report_soft_delete_days (a mistaken delete, a force_destroy_buckets
  # destroy); the lifecycle rule's deletions too, for that long.
  soft_delete_policy {
    retention_duration_seconds = var.report_soft_delete_days * 86400
  }

  lifecycle_rule {
    condition {
      age = var.report_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # Part segments (tmp/reports/{id}/) live until the aggregator composes
  # the CSV and deletes them, or DeadLetter deletes a failed
  # report's; a crash between the two leaves them: gone after a day.
  lifecycle_rule {
    condition {
      age            = 1
      matches_prefix = ["tmp/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}
