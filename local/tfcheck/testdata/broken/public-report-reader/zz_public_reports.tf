# Any Google account may read the reports.
resource "google_storage_bucket_iam_member" "reports_readable" {
  bucket = google_storage_bucket.reports.name
  role   = "roles/storage.objectViewer"
  member = "allAuthenticatedUsers"
}
