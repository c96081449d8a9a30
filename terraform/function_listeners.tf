# One listener per source table (local.listeners). Each has its own push
# subscription on its stage topic, reads only its own database (read-only
# DSN) and publishes "done" to report-aggregate. Listeners cannot write to
# the report bucket.

resource "google_service_account" "listener" {
  for_each = local.listeners

  account_id   = "${var.name}-${each.value.slug}"
  display_name = "fanout export: ${each.key} function"
}

resource "google_service_account" "listener_push" {
  for_each = local.listeners

  account_id   = "${var.name}-${each.value.slug}-push"
  display_name = "fanout export: pushes ${each.value.topic} to ${each.key}"
}

resource "google_cloudfunctions2_function" "listener" {
  for_each = local.listeners

  name        = "${var.name}-${each.value.subscription}"
  location    = var.region
  description = "Reads ${each.value.database} into the report hash (entry point ${each.key})."

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
    service_account_email            = google_service_account.listener[each.key].email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = var.listener_memory
    timeout_seconds                  = var.listener_timeout_seconds
    min_instance_count               = 0
    max_instance_count               = var.listener_max_instances[each.key]
    max_instance_request_concurrency = 1

    direct_vpc_network_interface {
      network    = google_compute_network.vpc.name
      subnetwork = google_compute_subnetwork.functions.name
      tags       = [local.function_tag]
    }
    direct_vpc_egress = var.vpc_egress

    environment_variables = local.common_env

    secret_environment_variables {
      key        = "REDIS_PASSWORD"
      project_id = var.project_id
      secret     = google_secret_manager_secret.redis_auth.secret_id
      version    = google_secret_manager_secret_version.redis_auth.version
    }
    secret_environment_variables {
      key        = "REDIS_CA_CERT"
      project_id = var.project_id
      secret     = google_secret_manager_secret.redis_ca.secret_id
      version    = google_secret_manager_secret_version.redis_ca.version
    }
    secret_environment_variables {
      key        = each.value.dsn_env
      project_id = var.project_id
      secret     = var.source_dsn_secrets[each.value.database]
      version    = "latest"
    }
  }

  lifecycle {
    precondition {
      condition     = local.db_connections[each.value.database] <= var.db_connection_limits[each.value.database]
      error_message = "The listeners of ${each.value.database} at max_instance_count could open more connections than db_connection_limits.${each.value.database} allows."
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.listener_redis_auth,
    google_secret_manager_secret_iam_member.listener_redis_ca,
    google_secret_manager_secret_iam_member.listener_dsn,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_image_writer,
  ]
}

resource "google_pubsub_subscription" "listener" {
  for_each = local.listeners

  name  = "${var.pubsub_name_prefix}${each.value.subscription}"
  topic = google_pubsub_topic.topic[each.value.topic].id

  ack_deadline_seconds       = local.push_ack_deadline_seconds
  message_retention_duration = local.push_message_retention

  expiration_policy {
    ttl = ""
  }

  push_config {
    push_endpoint = google_cloudfunctions2_function.listener[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.listener_push[each.key].email
      audience              = google_cloudfunctions2_function.listener[each.key].service_config[0].uri
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic["report-dead-letter"].id
    max_delivery_attempts = local.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = local.retry_backoff
    maximum_backoff = local.retry_backoff
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.listener_invoker,
    google_service_account_iam_member.listener_push_token_creator,
  ]
}

# Each push identity may invoke its own listener and nothing else.
resource "google_cloud_run_v2_service_iam_member" "listener_invoker" {
  for_each = local.listeners

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.listener[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.listener_push[each.key].email}"
}

resource "google_service_account_iam_member" "listener_push_token_creator" {
  for_each = local.listeners

  service_account_id = google_service_account.listener_push[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "listener_pubsub_agent" {
  for_each = local.listeners

  subscription = google_pubsub_subscription.listener[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "listener_publisher" {
  for_each = {
    for pair in setproduct(keys(local.listeners), local.listener_publishes) :
    "${pair[0]}/${pair[1]}" => { listener = pair[0], topic = pair[1] }
  }

  topic  = google_pubsub_topic.topic[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.listener[each.value.listener].email}"
}

resource "google_secret_manager_secret_iam_member" "listener_redis_auth" {
  for_each = local.listeners

  project   = var.project_id
  secret_id = google_secret_manager_secret.redis_auth.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.listener[each.key].email}"
}

resource "google_secret_manager_secret_iam_member" "listener_redis_ca" {
  for_each = local.listeners

  project   = var.project_id
  secret_id = google_secret_manager_secret.redis_ca.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.listener[each.key].email}"
}

# Only its own database's DSN.
resource "google_secret_manager_secret_iam_member" "listener_dsn" {
  for_each = local.listeners

  project   = var.project_id
  secret_id = var.source_dsn_secrets[each.value.database]
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.listener[each.key].email}"
}
