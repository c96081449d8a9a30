# A miniature of terraform/'s function locals, for ReadDeployment.
variable "worker_memory" {
  type    = string
  default = "1Gi"
}

variable "fast_concurrency" {
  type    = number
  default = 4
}

variable "redis_tier" {
  type    = string
  default = "BASIC"
}

variable "redis_memory_size_gb" {
  type    = number
  default = 2
}

variable "report_retention_days" {
  type    = number
  default = 7
}

variable "tick" {
  type    = string
  default = "*/10 * * * *"
}

locals {
  workers = {
    WorkA = { slug = "a" }
    WorkB = { slug = "b" }
  }

  worker_functions = {
    for ep, w in local.workers : ep => {
      name     = "w-${w.slug}"
      memory   = var.worker_memory
      cpu      = null
      identity = google_service_account.worker[ep]
      schedule = null
    }
  }

  other_functions = {
    Fast = {
      memory   = "256Mi"
      cpu      = var.fast_concurrency > 1 ? "1" : null
      schedule = null
    }
    Tick = {
      memory = "128Mi"
      cpu    = "500m"
      schedule = {
        cron     = var.tick
        identity = google_service_account.tick
      }
    }
  }
}

resource "google_cloudfunctions2_function" "fn" {
  service_config {
    min_instance_count = 0
  }
}
