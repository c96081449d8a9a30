# One source archive for every function, built from the repository root. The
# buildpack compiles the root package (register.go), which registers every
# entry point; each function picks its own with build_config.entry_point.

locals {
  # This module lives in terraform/ of the repository it deploys.
  source_dir = coalesce(var.source_dir, abspath("${path.module}/.."))

  # Patterns are doublestar globs relative to the repository root. The root
  # package and everything it imports (functions/, shared/) stay in.
  source_excludes = [
    ".git",
    ".github",
    ".ci",
    ".tmp",
    ".idea",
    ".vscode",
    "bin",
    "local",
    "terraform",
    "**/testdata",
    "**/*_test.go",
  ]
}

data "archive_file" "source" {
  type        = "zip"
  source_dir  = local.source_dir
  excludes    = local.source_excludes
  output_path = "${path.root}/.terraform/fanoutexport-source.zip"
}

resource "google_storage_bucket" "source" {
  project  = var.project_id
  name     = "${var.project_id}-${var.name}-source"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

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
  source       = data.archive_file.source.output_path
  content_type = "application/zip"
}

# Function images, with a cleanup policy instead of the unmanaged default
# gcf-artifacts repository.
resource "google_artifact_registry_repository" "functions" {
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name}-functions"
  format        = "DOCKER"
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
