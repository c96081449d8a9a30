output "topics" {
  description = "Topic names, keyed by their name in shared/topology."
  value       = { for k, t in google_pubsub_topic.topic : k => t.name }
}

output "subscriptions" {
  description = "Subscription names: push subscriptions keyed by the entry point they push to, pull subscriptions by their name in shared/topology (report-parked-hold, report-completed-amqp)."
  value = merge(
    { for ep, s in google_pubsub_subscription.push : ep => s.name },
    { for k, s in google_pubsub_subscription.pull : k => s.name },
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

output "build_service_account" {
  description = "The service account Cloud Build builds the functions as."
  value       = google_service_account.build.email
}

output "push_service_accounts" {
  description = "The identity each push subscription presents (OIDC) to its function, keyed by entry point."
  value       = { for ep, p in local.push_subscriptions : ep => p.identity.email }
}

output "scheduler_service_accounts" {
  description = "The identity each Cloud Scheduler job presents (OIDC) to its function, keyed by entry point."
  value       = { for ep, s in local.scheduled_functions : ep => s.identity.email }
}

output "function_names" {
  description = "Function (and Cloud Run service) names, keyed by entry point."
  value       = { for ep, f in google_cloudfunctions2_function.function : ep => f.name }
}

output "scheduler_jobs" {
  description = "Cloud Scheduler jobs, keyed by the entry point they call (DrainTriggers every minute, Sweep every 5 minutes)."
  value       = { for ep, j in google_cloud_scheduler_job.scheduled : ep => j.name }
}

output "egress_rules" {
  description = "The private destinations each function may reach (by network tag), as the firewall rules this module creates when manage_firewall is true. With manage_firewall = false, the network's administrators create these (and deny other private egress from the tags)."
  value       = local.egress_rules
}

output "function_network_tags" {
  description = "Network tag of each function (Direct VPC egress), keyed by entry point: the targets of the egress firewall rules."
  value       = local.function_tags
}

output "subnet_addresses_needed" {
  description = "Addresses the functions take from the subnet at their max_instance_count (Cloud Run reserves blocks of 16, about two addresses per instance). A subnet created here is checked against it; size a shared subnet with room for it."
  value       = local.subnet_addresses_needed
}

output "dashboard" {
  description = "The report dashboard's resource ID (reports finished by status, durations, 429s, dead letters, Redis memory)."
  value       = google_monitoring_dashboard.reports.id
}

output "iam_grants" {
  description = "Every IAM grant this module makes, keyed by member: sorted \"ROLE on KIND NAME\" strings (with the condition, if any). For audits; the tests assert it identity by identity."
  value = {
    for member, grants in {
      for g in concat(
        [for r in google_project_iam_member.grant : { member = r.member, grant = "${r.role} on project ${r.project}${length(r.condition) > 0 ? " if ${r.condition[0].expression}" : ""}" }],
        [for r in concat(values(google_pubsub_topic_iam_member.grant), values(google_pubsub_topic_iam_member.agent)) : { member = r.member, grant = "${r.role} on topic ${r.topic}" }],
        [for r in concat(values(google_pubsub_subscription_iam_member.grant), values(google_pubsub_subscription_iam_member.agent)) : { member = r.member, grant = "${r.role} on subscription ${r.subscription}" }],
        [for r in google_secret_manager_secret_iam_member.grant : { member = r.member, grant = "${r.role} on secret ${r.secret_id}" }],
        [for r in google_storage_bucket_iam_member.grant : { member = r.member, grant = "${r.role} on bucket ${r.bucket}${length(r.condition) > 0 ? " if ${r.condition[0].expression}" : ""}" }],
        [for r in google_cloud_run_v2_service_iam_member.grant : { member = r.member, grant = "${r.role} on service ${r.name}" }],
        [for r in concat(values(google_service_account_iam_member.grant), values(google_service_account_iam_member.agent)) : { member = r.member, grant = "${r.role} on service account ${r.service_account_id}" }],
        [for r in google_artifact_registry_repository_iam_member.grant : { member = r.member, grant = "${r.role} on repository ${r.repository}" }],
        [for r in google_compute_subnetwork_iam_member.grant : { member = r.member, grant = "${r.role} on subnetwork ${r.subnetwork}" }],
      ) : g.member => g.grant...
    } : member => sort(grants)
  }
}
