# One listener per source (local.listeners, from topology.json). Each has
# its own push subscription on its stage topic, reads only its own database
# (read-only DSN) and publishes "done" to report-aggregate. Listeners cannot
# write to the report bucket and never make a record final. The functions
# themselves, their push subscriptions and the grants their entries imply
# are in functions.tf and iam.tf. Nothing here names a listener: a new
# report.Source in shared/report, after `go generate ./shared/topology`,
# gets its function, service accounts, push subscription with dead-letter
# policy, grants and DSN secret from these few lines.

locals {
  # One listener function per source, keyed by its entry point
  # (report.Sources in shared/report/source.go): slug, source, database,
  # dsn_env, stage, topic, subscription.
  listeners = local.topology.listeners

  # The cap of a listener listener_max_instances does not name.
  listener_max_instances_default = 10

  listener_functions = {
    for ep, l in local.listeners : ep => {
      name            = "${var.name}-${l.subscription}"
      slug            = l.slug
      description     = "Reads ${l.database} into the report hash (entry point ${ep})."
      service_account = google_service_account.listener[ep]
      memory          = var.listener_memory
      cpu             = null
      timeout_seconds = var.listener_timeout_seconds
      # A delivery per part of each of max_in_flight reports at most,
      # capped by listener_max_instances (functions.tf).
      max_instances = min(ceil(local.max_part_deliveries / 1), lookup(var.listener_max_instances, ep, local.listener_max_instances_default))
      # One dataset in memory per instance.
      concurrency = 1
      database    = l.database
      # Its own database is its only one.
      source_databases = {}
      amqp             = false
      env = {
        MAX_REPORT_ROWS = tostring(var.max_report_rows)
      }
      # Only its own database's read-only DSN (functions.tf).
      dsn_env    = l.dsn_env
      secrets    = {}
      publishes  = ["report-aggregate", "report-parked"]
      subscribes = []
      announces  = false
      push = {
        subscription = l.subscription
        topic        = l.topic
        identity     = google_service_account.listener_push[ep]
        delivery     = local.topology.functions[ep].delivery
      }
      schedule = null
    }
  }
}

resource "google_service_account" "listener" {
  for_each = local.listeners

  project      = var.project_id
  account_id   = "${var.name}-${each.value.slug}"
  display_name = "fanout export: ${each.key} function"

  depends_on = [google_project_service.this]
}

resource "google_service_account" "listener_push" {
  for_each = local.listeners

  project      = var.project_id
  account_id   = "${var.name}-${each.value.slug}-push"
  display_name = "fanout export: pushes ${each.value.topic} to ${each.key}"

  depends_on = [google_project_service.this]
}
