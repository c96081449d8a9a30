# Report state (shared/aggstate). Hashes carry a TTL; the default
# maxmemory-policy volatile-lru would evict exactly those live reports under
# memory pressure, so writes must fail instead (noeviction) and an alert
# fires well before (monitoring.tf).
resource "google_redis_instance" "state" {
  name           = "${var.name}-state"
  display_name   = "fanout export report state"
  region         = var.region
  tier           = var.redis_tier
  memory_size_gb = var.redis_memory_size_gb
  redis_version  = var.redis_version

  authorized_network = google_compute_network.vpc.id
  connect_mode       = "DIRECT_PEERING"
  reserved_ip_range  = var.redis_reserved_ip_range

  # AUTH string and TLS with server authentication (port 6378); both reach
  # the functions through Secret Manager (secrets.tf).
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  depends_on = [google_project_service.this]
}
