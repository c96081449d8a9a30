# Memorystore's AUTH string and server CA, as secrets the functions read
# through secret_environment_variables (REDIS_PASSWORD, REDIS_CA_CERT). They
# are never plain environment variables and never outputs.
#
# The DSNs and the AMQP URL are secrets created outside Terraform
# (var.record_dsn_secret, var.source_dsn_secrets, var.amqp_url_secret), so
# their values never enter state. Each function file grants its own service
# account access to exactly the secrets it reads.

resource "google_secret_manager_secret" "redis_auth" {
  secret_id = "${var.name}-redis-auth"

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_version" "redis_auth" {
  secret = google_secret_manager_secret.redis_auth.id

  # Write-only: the AUTH string is not stored again in this resource's state.
  # Bump the version after rotating the instance's AUTH string.
  secret_data_wo         = google_redis_instance.state.auth_string
  secret_data_wo_version = 1
}

resource "google_secret_manager_secret" "redis_ca" {
  secret_id = "${var.name}-redis-ca"

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_version" "redis_ca" {
  secret = google_secret_manager_secret.redis_ca.id

  # Every current server CA: during a CA rotation both are trusted.
  secret_data = join("\n", google_redis_instance.state.server_ca_certs[*].cert)
}
