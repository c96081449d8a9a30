# DrainTriggers, the MQ1 shim. Cloud Functions only run during a request, so
# Cloud Scheduler calls this HTTP function every minute; each call consumes
# report.trigger for DRAIN_FOR (50 s), republishes each trigger to
# report-stage-1 (acking only after Pub/Sub confirmed) and returns. One
# instance at most: one drain at a time.

resource "google_service_account" "drain_triggers" {
  account_id   = "${var.name}-drain"
  display_name = "fanout export: DrainTriggers function"
}

# The identity Cloud Scheduler presents (OIDC) when calling DrainTriggers.
resource "google_service_account" "drain_scheduler" {
  account_id   = "${var.name}-drain-sched"
  display_name = "fanout export: Cloud Scheduler invoker of DrainTriggers"
}

resource "google_cloudfunctions2_function" "drain_triggers" {
  name        = "${var.name}-drain-triggers"
  location    = var.region
  description = "Moves report triggers from RabbitMQ to Pub/Sub (entry point DrainTriggers)."

  build_config {
    runtime           = local.go_runtime
    entry_point       = "DrainTriggers"
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
    service_account_email          = google_service_account.drain_triggers.email
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    available_memory               = "256Mi"
    timeout_seconds                = var.drain_triggers_timeout_seconds
    min_instance_count             = 0
    # One consumer at a time; a tick that finds it busy is skipped and the
    # next tick drains what is left.
    max_instance_count               = 1
    max_instance_request_concurrency = 1

    direct_vpc_network_interface {
      network    = google_compute_network.vpc.name
      subnetwork = google_compute_subnetwork.functions.name
      tags       = [local.function_tag, local.drain_tag]
    }
    direct_vpc_egress = var.vpc_egress

    environment_variables = merge(local.common_env, {
      DRAIN_FOR     = "${var.drain_for_seconds}s"
      TRIGGER_QUEUE = var.trigger_queue
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
    secret_environment_variables {
      key        = "AMQP_URL"
      project_id = var.project_id
      secret     = var.amqp_url_secret
      version    = "latest"
    }
  }

  lifecycle {
    precondition {
      condition     = var.drain_for_seconds + 30 <= var.drain_triggers_timeout_seconds
      error_message = "drain_triggers_timeout_seconds must exceed drain_for_seconds by at least 30 s, to finish the last publishes after the drain."
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.drain_triggers,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_image_writer,
  ]
}

resource "google_cloud_scheduler_job" "drain_triggers" {
  name        = "${var.name}-drain-triggers"
  region      = var.region
  description = "Calls DrainTriggers, which consumes report.trigger for DRAIN_FOR."
  schedule    = var.drain_schedule
  time_zone   = "Etc/UTC"

  attempt_deadline = "${var.drain_triggers_timeout_seconds}s"

  # A missed tick is covered by the next one a minute later.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.drain_triggers.service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.drain_scheduler.email
      audience              = google_cloudfunctions2_function.drain_triggers.service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.this,
    google_cloud_run_v2_service_iam_member.drain_triggers_invoker,
  ]
}

# The scheduler identity may invoke DrainTriggers and nothing else.
resource "google_cloud_run_v2_service_iam_member" "drain_triggers_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.drain_triggers.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.drain_scheduler.email}"
}

resource "google_pubsub_topic_iam_member" "drain_triggers_publisher" {
  for_each = toset(local.drain_publishes)

  topic  = google_pubsub_topic.topic[each.key].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.drain_triggers.email}"
}

resource "google_secret_manager_secret_iam_member" "drain_triggers" {
  for_each = {
    redis_auth = google_secret_manager_secret.redis_auth.secret_id
    redis_ca   = google_secret_manager_secret.redis_ca.secret_id
    record_dsn = var.record_dsn_secret
    amqp_url   = var.amqp_url_secret
  }

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.drain_triggers.email}"
}
