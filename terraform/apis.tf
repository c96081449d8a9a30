# APIs the module uses. disable_on_destroy = false: other workloads in the
# project may rely on them, and disabling an API destroys its resources.
#
# Every resource that calls an API waits for all of them: the resources that
# start a chain (service accounts, topics, buckets, secrets, the network,
# Redis, the repository, the data sources) name google_project_service.this
# in depends_on, and everything else refers to one of those.
locals {
  apis = merge(
    {
      "artifactregistry.googleapis.com"     = "function images (build_config.docker_repository)"
      "cloudbuild.googleapis.com"           = "builds the Go functions from the source archive"
      "cloudfunctions.googleapis.com"       = "the functions"
      "cloudresourcemanager.googleapis.com" = "project IAM grants; reads the project number"
      "cloudscheduler.googleapis.com"       = "fires DrainTriggers every minute and Sweep every 5 minutes"
      "cloudtrace.googleapis.com"           = "the functions export their spans (TRACE_EXPORTER=gcp)"
      "compute.googleapis.com"              = "VPC, subnet and firewall rules for Direct VPC egress"
      "iam.googleapis.com"                  = "service accounts"
      "logging.googleapis.com"              = "build and function logs; the report log metrics"
      "monitoring.googleapis.com"           = "alert policies and the dashboard"
      "pubsub.googleapis.com"               = "topics and subscriptions"
      "redis.googleapis.com"                = "Memorystore for Redis"
      "run.googleapis.com"                  = "gen2 functions run as Cloud Run services"
      "secretmanager.googleapis.com"        = "DSNs, AMQP URL, Redis AUTH string and CA"
      "storage.googleapis.com"              = "source archive and report buckets"
    },
    # Signing V4 URLs with a function's own identity (no key file) calls
    # the IAM Credentials API's signBlob; only needed when signing is on.
    local.sign_urls ? { "iamcredentials.googleapis.com" = "signs report download URLs (SIGNED_URL_TTL)" } : {},
    # The Cloud SQL Go connector asks the Admin API for each instance's
    # address and certificate.
    length(var.cloud_sql_instances) > 0 ? { "sqladmin.googleapis.com" = "the Cloud SQL Go connector (cloud_sql_instances)" } : {},
    # The private googleapis.com zone of a network created here.
    local.google_apis_zone ? { "dns.googleapis.com" = "resolves *.googleapis.com to private.googleapis.com (all-traffic egress)" } : {},
  )
}

resource "google_project_service" "this" {
  for_each = local.apis

  project            = var.project_id
  service            = each.key
  disable_on_destroy = false
}
