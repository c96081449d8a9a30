# Report state (shared/state). Hashes carry a TTL; the default
# maxmemory-policy volatile-lru would evict exactly those live reports under
# memory pressure, so writes must fail instead (noeviction), new reports
# wait above REDIS_MEMORY_HIGH_WATER (DrainTriggers), and an alert fires before
# it is full (monitoring.tf).
resource "google_redis_instance" "state" {
  project        = var.project_id
  name           = "${var.name}-state"
  display_name   = "fanout export report state"
  region         = var.region
  tier           = var.redis_tier
  memory_size_gb = var.redis_memory_size_gb
  redis_version  = var.redis_version

  # DIRECT_PEERING peers Memorystore with the VPC through reserved_ip_range.
  # A Shared VPC needs PRIVATE_SERVICE_ACCESS (private services access set
  # up in the host project; reserved_ip_range then names its allocated
  # range, or is null).
  authorized_network = local.network_id
  connect_mode       = var.redis_connect_mode
  reserved_ip_range  = var.redis_reserved_ip_range

  # AUTH string and TLS with server authentication (port 6378); both reach
  # the functions through Secret Manager (secrets.tf). The AUTH string is
  # in this resource's state: keep the state where only the deployers can
  # read it.
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }

  labels = local.labels

  # Deleting or replacing the instance loses every report in flight: by
  # default any plan that would do so fails (redis_deletion_policy; the
  # inputs that replace it are listed in README.md, Destroying).
  deletion_policy = var.redis_deletion_policy

  # Not created before the external secrets are known to be there: a
  # missing one would otherwise fail the functions after Redis exists.
  depends_on = [
    google_project_service.this,
    data.google_secret_manager_secret_version.external,
  ]
}
