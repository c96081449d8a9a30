# The aggregate push identity may also invoke DeadLetter.
resource "google_cloud_run_v2_service_iam_member" "aggregate_push_invokes_dead_letter" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["DeadLetter"].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.aggregate_push.email}"
}
