# One source archive for every function, built from an allow-list of the
# repository's files (or given as source_archive). The
# buildpack compiles the root package (register.go), which registers every
# entry point; each function picks its own with build_config.entry_point.

locals {
  # This module lives in terraform/ of the repository it deploys.
  source_dir = coalesce(var.source_dir, abspath("${path.module}/.."))

  # An allow-list, not the working tree: go.mod, go.sum and the Go files of
  # the root package, functions/ and shared/ (what the root package's
  # build needs), without tests or testdata. Nothing else of the directory
  # (.env, keys, notes, local/, terraform/, .git) can reach Cloud Build.
  # Uncommitted edits to those Go files still do: deploy a release from
  # source_archive, built from a commit.
  source_files = var.source_archive != null ? [] : [
    for f in sort(setunion(
      fileset(local.source_dir, "{go.mod,go.sum,*.go}"),
      fileset(local.source_dir, "{functions,shared}/**/*.go"),
    )) : f if !endswith(f, "_test.go") && !strcontains("/${f}", "/testdata/")
  ]
}

data "archive_file" "source" {
  count = var.source_archive == null ? 1 : 0

  type        = "zip"
  output_path = "${path.root}/.terraform/fanoutexport-source.zip"

  lifecycle {
    precondition {
      condition     = contains(local.source_files, "go.mod") && contains(local.source_files, "register.go")
      error_message = "source_dir ${local.source_dir} is not the repository root: it has no go.mod or register.go to archive. Set source_dir, or source_archive."
    }
  }

  dynamic "source" {
    for_each = local.source_files

    content {
      filename = source.value
      content  = file("${local.source_dir}/${source.value}")
    }
  }
}

resource "google_storage_bucket" "source" {
  project  = var.project_id
  name     = "${var.project_id}-${var.name}-source"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets
  labels                      = local.labels

  # One object name, a new generation per upload: the functions are pinned
  # to the live generation, which is never noncurrent, so the delete rule
  # below can only remove superseded uploads (kept a while for rollback).
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = var.source_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

# A changed archive (the provider compares its MD5 with the object's)
# replaces the object: a new generation, which rebuilds every function.
resource "google_storage_bucket_object" "source" {
  name         = "fanoutexport/source.zip"
  bucket       = google_storage_bucket.source.name
  source       = coalesce(var.source_archive, one(data.archive_file.source[*].output_path))
  content_type = "application/zip"
}

# Function images, with a cleanup policy instead of the unmanaged default
# gcf-artifacts repository.
resource "google_artifact_registry_repository" "functions" {
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name}-functions"
  format        = "DOCKER"
  labels        = local.labels
  description   = "Images built from the fanoutexport source archive."

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.this]
}
