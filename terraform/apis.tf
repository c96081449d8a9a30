# APIs the module uses. disable_on_destroy = false: other workloads in the
# project may rely on them, and disabling an API destroys its resources.
locals {
  apis = {
    "artifactregistry.googleapis.com"     = "function images (build_config.docker_repository)"
    "cloudbuild.googleapis.com"           = "builds the Go functions from the source archive"
    "cloudfunctions.googleapis.com"       = "the functions"
    "cloudresourcemanager.googleapis.com" = "reads the project number for the Pub/Sub service agent"
    "cloudscheduler.googleapis.com"       = "fires DrainTriggers every minute"
    "compute.googleapis.com"              = "VPC, subnet and firewall for Direct VPC egress"
    "iam.googleapis.com"                  = "service accounts"
    "logging.googleapis.com"              = "build and function logs"
    "monitoring.googleapis.com"           = "alert policies"
    "pubsub.googleapis.com"               = "topics and push subscriptions"
    "redis.googleapis.com"                = "Memorystore for Redis"
    "run.googleapis.com"                  = "gen2 functions run as Cloud Run services"
    "secretmanager.googleapis.com"        = "DSNs, AMQP URL, Redis AUTH string and CA"
    "storage.googleapis.com"              = "source archive and report buckets"
  }
}

resource "google_project_service" "this" {
  for_each = local.apis

  project            = var.project_id
  service            = each.key
  disable_on_destroy = false
}
