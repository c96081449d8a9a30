# DeadLetter: push subscription "dead-letter" on report-dead-letter. Marks the
# record FAILED with a reason naming the stage and listener; parks what it
# cannot attribute on report-parked.

resource "google_service_account" "dead_letter" {
  account_id   = "${var.name}-dead-letter"
  display_name = "fanout export: DeadLetter function"
}

resource "google_service_account" "dead_letter_push" {
  account_id   = "${var.name}-dead-letter-push"
  display_name = "fanout export: pushes report-dead-letter to DeadLetter"
}

resource "google_cloudfunctions2_function" "dead_letter" {
  name        = "${var.name}-dead-letter"
  location    = var.region
  description = "Marks records FAILED for dead-lettered messages (entry point DeadLetter)."

  build_config {
    runtime           = local.go_runtime
    entry_point       = "DeadLetter"
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
    service_account_email            = google_service_account.dead_letter.email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = "256Mi"
    timeout_seconds                  = var.dead_letter_timeout_seconds
    min_instance_count               = 0
    max_instance_count               = var.dead_letter_max_instances
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
      key        = "RECORD_DSN"
      project_id = var.project_id
      secret     = var.record_dsn_secret
      version    = "latest"
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.dead_letter,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_image_writer,
  ]
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = toset(local.dead_letter_publishes)

  topic  = google_pubsub_topic.topic[each.key].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.dead_letter.email}"
}

resource "google_secret_manager_secret_iam_member" "dead_letter" {
  for_each = {
    redis_auth = google_secret_manager_secret.redis_auth.secret_id
    redis_ca   = google_secret_manager_secret.redis_ca.secret_id
    record_dsn = var.record_dsn_secret
  }

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.dead_letter.email}"
}
