# A function for an entry point register.go does not register: the build
# would succeed and every request would fail.
resource "google_service_account" "export_all" {
  project      = var.project_id
  account_id   = "${var.name}-export-all"
  display_name = "fanout export: ExportAll function"
}

resource "google_cloudfunctions2_function" "export_all" {
  project  = var.project_id
  name     = "${var.name}-export-all"
  location = var.region

  build_config {
    runtime     = local.go_runtime
    entry_point = "ExportAll"

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.export_all.email
    ingress_settings      = "ALLOW_INTERNAL_ONLY"
    timeout_seconds       = 60
    max_instance_count    = 1
  }
}
