# A listener may create objects in the report bucket.
resource "google_storage_bucket_iam_member" "withdraw_writes_reports" {
  bucket = google_storage_bucket.reports.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.listener["ListenWithdraw"].email}"
}
