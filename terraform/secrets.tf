# Memorystore's AUTH string and server CA, as secrets the functions read
# through secret_environment_variables (REDIS_PASSWORD, REDIS_CA_CERT). They
# are never plain environment variables and never outputs.
#
# The versions follow the instance: a replaced instance (tier, network, TLS
# mode, ...) has a new AUTH string and CA, and so does a rotated AUTH string
# or a CA rotation once Terraform has refreshed the instance. A changed
# value makes a new secret version, and the functions, pinned to the
# version Terraform wrote (functions.tf), redeploy with it. The version
# being replaced is disabled, not destroyed (deletion_policy), so it stays
# for audit and can be re-enabled by hand; by the time it is disabled the
# value it holds is no longer valid (old instance gone, AUTH rotated).
#
# The AUTH string is stored with secret_data, not the write-only
# secret_data_wo: the instance's own state holds it anyway, and a plain
# value is what lets a new one make a new version by itself.
#
# The DSNs and the AMQP URL are secrets created outside Terraform
# (var.record_dsn_secret, var.source_dsn_secrets, var.amqp_url_secret), so
# their values never enter state. iam.tf grants each function access to
# exactly the secrets it reads.

resource "google_secret_manager_secret" "redis_auth" {
  project   = var.project_id
  secret_id = "${var.name}-redis-auth"

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_version" "redis_auth" {
  secret          = google_secret_manager_secret.redis_auth.id
  secret_data     = google_redis_instance.state.auth_string
  deletion_policy = "DISABLE"
}

resource "google_secret_manager_secret" "redis_ca" {
  project   = var.project_id
  secret_id = "${var.name}-redis-ca"

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_version" "redis_ca" {
  secret = google_secret_manager_secret.redis_ca.id

  # Every current server CA: during a CA rotation both are trusted.
  secret_data     = join("\n", google_redis_instance.state.server_ca_certs[*].cert)
  deletion_policy = "DISABLE"
}
