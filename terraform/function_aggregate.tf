# Aggregate: push subscription "aggregate" on report-aggregate. When every
# listener of a stage is done it claims the stage, then fans out the next
# stage (report-stage-2) or joins, writes reports/{id}/{type}.csv to the
# report bucket and marks the record SUCCESS.

resource "google_service_account" "aggregate" {
  account_id   = "${var.name}-aggregate"
  display_name = "fanout export: Aggregate function"
}

# The identity Pub/Sub presents (OIDC) when pushing to Aggregate.
resource "google_service_account" "aggregate_push" {
  account_id   = "${var.name}-aggregate-push"
  display_name = "fanout export: pushes report-aggregate to Aggregate"
}

resource "google_cloudfunctions2_function" "aggregate" {
  name        = "${var.name}-aggregate"
  location    = var.region
  description = "Joins the stage datasets and writes the report CSV (entry point Aggregate)."

  build_config {
    runtime           = local.go_runtime
    entry_point       = "Aggregate"
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
    service_account_email            = google_service_account.aggregate.email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = var.aggregate_memory
    timeout_seconds                  = var.aggregate_timeout_seconds
    min_instance_count               = 0
    max_instance_count               = var.aggregate_max_instances
    max_instance_request_concurrency = 1

    direct_vpc_network_interface {
      network    = google_compute_network.vpc.name
      subnetwork = google_compute_subnetwork.functions.name
      tags       = [local.function_tag]
    }
    direct_vpc_egress = var.vpc_egress

    environment_variables = merge(local.common_env, {
      REPORT_BUCKET = google_storage_bucket.reports.name
      # A claim expires when the function that took it has surely stopped.
      CLAIM_TTL = "${var.aggregate_timeout_seconds}s"
    })

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
      key        = "RECORD_DSN"
      project_id = var.project_id
      secret     = var.record_dsn_secret
      version    = "latest"
    }
  }

  lifecycle {
    precondition {
      condition     = local.db_connections.record <= var.db_connection_limits["record"]
      error_message = "DrainTriggers, Aggregate and DeadLetter at max_instance_count could open more connections on the record database than db_connection_limits.record allows."
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.aggregate,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_image_writer,
  ]
}

resource "google_pubsub_subscription" "aggregate" {
  name  = "${var.pubsub_name_prefix}aggregate"
  topic = google_pubsub_topic.topic["report-aggregate"].id

  ack_deadline_seconds       = local.push_ack_deadline_seconds
  message_retention_duration = local.push_message_retention

  expiration_policy {
    ttl = ""
  }

  push_config {
    push_endpoint = google_cloudfunctions2_function.aggregate.service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.aggregate_push.email
      audience              = google_cloudfunctions2_function.aggregate.service_config[0].uri
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
    google_cloud_run_v2_service_iam_member.aggregate_invoker,
    google_service_account_iam_member.aggregate_push_token_creator,
  ]
}

# The push identity may invoke Aggregate and nothing else.
resource "google_cloud_run_v2_service_iam_member" "aggregate_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.aggregate.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.aggregate_push.email}"
}

# Pub/Sub's service agent mints the OIDC token of the push identity.
resource "google_service_account_iam_member" "aggregate_push_token_creator" {
  service_account_id = google_service_account.aggregate_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# Dead-lettering acks the message on the source subscription as the agent.
resource "google_pubsub_subscription_iam_member" "aggregate_pubsub_agent" {
  subscription = google_pubsub_subscription.aggregate.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "aggregate_publisher" {
  for_each = toset(local.aggregate_publishes)

  topic  = google_pubsub_topic.topic[each.key].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.aggregate.email}"
}

resource "google_secret_manager_secret_iam_member" "aggregate" {
  for_each = {
    redis_auth = google_secret_manager_secret.redis_auth.secret_id
    redis_ca   = google_secret_manager_secret.redis_ca.secret_id
    record_dsn = var.record_dsn_secret
  }

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.aggregate.email}"
}

# Writes and, on a takeover, overwrites report objects: create + delete on
# this bucket only. Listeners and the other functions get nothing here.
resource "google_storage_bucket_iam_member" "aggregate_report_writer" {
  bucket = google_storage_bucket.reports.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.aggregate.email}"
}

# Signing V4 URLs with its own identity (no key file): the aggregator may
# mint tokens for itself only.
resource "google_service_account_iam_member" "aggregate_signs_urls" {
  count = var.issue_signed_urls ? 1 : 0

  service_account_id = google_service_account.aggregate.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.aggregate.email}"
}
