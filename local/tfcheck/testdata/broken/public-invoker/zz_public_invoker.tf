# Anyone on the internet may call the aggregator (ingress still internal,
# but one setting away from exposed).
resource "google_cloud_run_v2_service_iam_member" "aggregate_public" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["Aggregate"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
