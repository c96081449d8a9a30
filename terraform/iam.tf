# Identities that are not one function's own: the build identity, and the
# optional Cloud SQL client grants. Each function's runtime identity and its
# push (or scheduler) invoker identity are in the function's own file, with
# the grants only it holds; the grants every function's entry implies
# (invoker, secrets, publishing) are in functions.tf.

# Cloud Build builds the functions as this account instead of the default
# Compute Engine service account (which often holds Editor).
resource "google_service_account" "build" {
  account_id   = "${var.name}-build"
  display_name = "fanout export: builds the functions"
}

resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# Reads the source archive: our source bucket, and the gcf-v2-sources bucket
# Cloud Functions copies it to before the build.
resource "google_project_iam_member" "build_source_reader" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "function source buckets only"
    description = "The fanout source bucket and the Cloud Functions sources bucket."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.source.name}\") || resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}\")"
  }
}

resource "google_artifact_registry_repository_iam_member" "build_image_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# Optional: functions whose DSN dials a Cloud SQL instance through the Cloud
# SQL Go connector may connect to that instance only.
locals {
  cloud_sql_grants = {
    for ep, f in local.functions : "${ep}/${f.database}" => {
      database = f.database
      email    = f.service_account.email
    } if contains(keys(var.cloud_sql_instances), f.database)
  }
}

resource "google_project_iam_member" "cloud_sql_client" {
  for_each = local.cloud_sql_grants

  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${each.value.email}"

  condition {
    title      = "only the ${each.value.database} instance"
    expression = "resource.name == \"projects/${split(":", var.cloud_sql_instances[each.value.database])[0]}/instances/${split(":", var.cloud_sql_instances[each.value.database])[2]}\""
  }
}
