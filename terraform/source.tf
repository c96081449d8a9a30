# One source archive for every function, built from the repository root. The
# buildpack compiles the root package (register.go), which registers every
# entry point; each function picks its own with build_config.entry_point.

locals {
  repo_root = abspath("${path.module}/..")

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
  source_dir  = local.repo_root
  excludes    = local.source_excludes
  output_path = "${path.module}/.terraform/fanoutexport-source.zip"
}

resource "google_storage_bucket" "source" {
  name     = "${var.project_id}-${var.name}-source"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  # Only needed while a build runs; the object name changes with every change.
  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

# Named by content hash: a changed source is a new object, which redeploys
# every function.
resource "google_storage_bucket_object" "source" {
  name   = "fanoutexport/${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

# Function images, with a cleanup policy instead of the unmanaged default
# gcf-artifacts repository.
resource "google_artifact_registry_repository" "functions" {
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
