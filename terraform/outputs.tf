output "topics" {
  description = "Topic names, keyed by their name in shared/topology."
  value       = { for k, t in google_pubsub_topic.topic : k => t.name }
}

output "subscriptions" {
  description = "Subscription names, keyed by entry point of the function they push to (report-parked-hold under \"parked\")."
  value = merge(
    { for ep, s in google_pubsub_subscription.push : ep => s.name },
    { parked = google_pubsub_subscription.parked_hold.name },
  )
}

output "function_urls" {
  description = "Function URLs, keyed by entry point. Ingress is internal only: callable from the VPC, Pub/Sub and Cloud Scheduler, not the internet."
  value       = { for ep, f in google_cloudfunctions2_function.function : ep => f.service_config[0].uri }
}

output "report_bucket" {
  description = "Bucket the reports are written to (objects reports/{id}/{type}.csv)."
  value       = google_storage_bucket.reports.name
}

output "redis_host" {
  description = "Memorystore host and TLS port (REDIS_ADDR). The AUTH string and CA are in the secrets named by redis_secrets."
  value       = "${google_redis_instance.state.host}:${google_redis_instance.state.port}"
}

output "redis_secrets" {
  description = "Secret Manager secret IDs holding the Redis AUTH string and server CA (names only, never values)."
  value = {
    auth = google_secret_manager_secret.redis_auth.secret_id
    ca   = google_secret_manager_secret.redis_ca.secret_id
  }
}

output "service_accounts" {
  description = "Runtime service account of each function, keyed by entry point."
  value       = { for ep, f in local.functions : ep => f.service_account.email }
}

output "scheduler_job" {
  description = "Cloud Scheduler job that fires DrainTriggers."
  value       = google_cloud_scheduler_job.drain_triggers.name
}
