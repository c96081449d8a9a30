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
  labels    = local.labels

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
  labels    = local.labels

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

# The secrets made outside Terraform are checked when planning, not 15
# minutes into an apply when the first function starts: the plan fails if
# a secret, or any version of it, is missing, or if its latest version is
# destroyed. Only metadata is read (fetch_secret_data = false): no value
# enters the plan or the state. The provider's data source reports every
# version it finds as enabled, so a latest version that is disabled is not
# caught here (README.md, "Not verified against a real project").
locals {
  external_secrets = merge(
    { for db, s in local.dsn_secrets : "dsn-${replace(db, "_", "-")}" => s if s != null && !contains(keys(var.cloud_sql_instances), db) },
    { amqp-url = var.amqp_url_secret },
  )
}

data "google_secret_manager_secret_version" "external" {
  for_each = local.external_secrets

  project           = var.project_id
  secret            = each.value
  version           = "latest"
  fetch_secret_data = false

  lifecycle {
    postcondition {
      condition     = self.destroy_time == null || self.destroy_time == ""
      error_message = "Secret ${each.value} (${each.key}): its latest version ${self.version} is destroyed; add a version (gcloud secrets versions add ${each.value} --data-file=-) before applying."
    }
  }
}
