# What every function shares: gen2 Go from the one source archive, internal
# ingress, Direct VPC egress, one request per instance, Redis over TLS with
# AUTH, and (for the Pub/Sub-driven ones) a push subscription of its own.
# What differs is the function's entry in local.functions, written in its
# own function_*.tf next to its service accounts. An entry, keyed by entry
# point, holds:
#
#   name, description  the function (Cloud Run service) name and description
#   service_account    its own runtime google_service_account
#   memory, timeout_seconds, max_instances
#   database           the database it connects to (connection budget)
#   network_tags       firewall tags besides local.function_tag
#   env                plain environment besides local.common_env
#   secrets            env name => Secret Manager secret ID (read at version
#                      "latest"), besides the Redis AUTH string and CA
#   publishes          the topics it may publish to
#   push               null (called by Cloud Scheduler), or its push
#                      subscription: subscription and topic names, identity
#                      (its own push google_service_account) and delivery
#                      (local.push_delivery, or local.dead_letter_delivery)

locals {
  functions = merge(
    local.listener_functions,
    local.aggregate_function,
    local.dead_letter_function,
    local.drain_triggers_function,
  )

  # The Pub/Sub-driven functions' subscriptions, keyed by entry point.
  push_subscriptions = { for ep, f in local.functions : ep => f.push if f.push != null }

  # Environment every function reads (shared/config: PubSub and Redis).
  common_env = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    PUBSUB_NAME_PREFIX   = var.pubsub_name_prefix
    REDIS_ADDR           = "${google_redis_instance.state.host}:${google_redis_instance.state.port}"
    REDIS_TLS            = "true"
    DB_MAX_CONNS         = tostring(var.db_connections_per_instance)
  }

  # Every function reads Memorystore's AUTH string and CA at the version
  # Terraform wrote: rotating them bumps the version and redeploys.
  redis_secrets = {
    REDIS_PASSWORD = {
      secret  = google_secret_manager_secret.redis_auth.secret_id
      version = google_secret_manager_secret_version.redis_auth.version
    }
    REDIS_CA_CERT = {
      secret  = google_secret_manager_secret.redis_ca.secret_id
      version = google_secret_manager_secret_version.redis_ca.version
    }
  }

  # The secrets each function mounts, by entry point and env name. The DSNs
  # and the AMQP URL are created outside Terraform and rotated by adding a
  # version, so functions read "latest".
  function_secrets = {
    for ep, f in local.functions : ep => merge(local.redis_secrets, {
      for env, secret in f.secrets : env => { secret = secret, version = "latest" }
    })
  }

  # A function may read exactly the secrets it mounts and publish to exactly
  # the topics its entry lists.
  secret_grants = merge([
    for ep, secrets in local.function_secrets : {
      for env, s in secrets : "${ep}/${env}" => { function = ep, secret = s.secret }
    }
  ]...)
  publisher_grants = merge([
    for ep, f in local.functions : {
      for topic in f.publishes : "${ep}/${topic}" => { function = ep, topic = topic }
    }
  ]...)

  # Open connections per database at full scale-out, checked against
  # var.db_connection_limits by the functions' precondition.
  db_connections = {
    for db in distinct([for f in values(local.functions) : f.database]) :
    db => sum([for f in values(local.functions) : f.max_instances if f.database == db]) * var.db_connections_per_instance
  }
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name        = each.value.name
  location    = var.region
  description = each.value.description

  build_config {
    runtime           = local.go_runtime
    entry_point       = each.key
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = each.value.service_account.email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = each.value.memory
    timeout_seconds                  = each.value.timeout_seconds
    min_instance_count               = 0
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = 1

    direct_vpc_network_interface {
      network    = google_compute_network.vpc.name
      subnetwork = google_compute_subnetwork.functions.name
      tags       = concat([local.function_tag], each.value.network_tags)
    }
    direct_vpc_egress = var.vpc_egress

    environment_variables = merge(local.common_env, each.value.env)

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets[each.key]

      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.db_connections[each.value.database] <= var.db_connection_limits[each.value.database]
      error_message = "The functions using ${each.value.database} at max_instance_count could open more connections than db_connection_limits.${each.value.database} allows."
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.function,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_image_writer,
  ]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions

  name  = "${var.pubsub_name_prefix}${each.value.subscription}"
  topic = google_pubsub_topic.topic[each.value.topic].id

  ack_deadline_seconds       = local.push_ack_deadline_seconds
  message_retention_duration = local.push_message_retention

  expiration_policy {
    ttl = ""
  }

  push_config {
    push_endpoint = google_cloudfunctions2_function.function[each.key].service_config[0].uri

    oidc_token {
      service_account_email = each.value.identity.email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic[each.value.delivery.dead_letter_topic].id
    max_delivery_attempts = each.value.delivery.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = each.value.delivery.minimum_backoff
    maximum_backoff = each.value.delivery.maximum_backoff
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_service_account_iam_member.push_token_creator,
  ]
}

# Each push identity may invoke its own function and nothing else.
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = local.push_subscriptions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value.identity.email}"
}

# Pub/Sub's service agent mints the OIDC token of each push identity.
resource "google_service_account_iam_member" "push_token_creator" {
  for_each = local.push_subscriptions

  service_account_id = each.value.identity.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# Dead-lettering acks the message on the source subscription as the agent.
resource "google_pubsub_subscription_iam_member" "pubsub_agent" {
  for_each = local.push_subscriptions

  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "function" {
  for_each = local.publisher_grants

  topic  = google_pubsub_topic.topic[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${local.functions[each.value.function].service_account.email}"
}

resource "google_secret_manager_secret_iam_member" "function" {
  for_each = local.secret_grants

  project   = var.project_id
  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.functions[each.value.function].service_account.email}"
}
