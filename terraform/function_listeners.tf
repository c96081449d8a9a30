# One listener per source table (local.listeners). Each has its own push
# subscription on its stage topic, reads only its own database (read-only
# DSN) and publishes "done" to report-aggregate. Listeners cannot write to
# the report bucket. The functions themselves, their push subscriptions and
# the grants their entries imply are in functions.tf.

locals {
  # One listener function per source table, keyed by its entry point
  # (report.Sources in shared/report/source.go).
  listeners = {
    ListenUserTagRelation = {
      slug         = "user-tag"
      subscription = "listen-user-tag-relation"
      topic        = "report-stage-1"
      database     = "plt_user"
      dsn_env      = "DSN_PLT_USER"
    }
    ListenWithdraw = {
      slug         = "withdraw"
      subscription = "listen-withdraw"
      topic        = "report-stage-1"
      database     = "plt_fund"
      dsn_env      = "DSN_PLT_FUND"
    }
    ListenPayment = {
      slug         = "payment"
      subscription = "listen-payment"
      topic        = "report-stage-2"
      database     = "plt_fund"
      dsn_env      = "DSN_PLT_FUND"
    }
  }

  listener_functions = {
    for ep, l in local.listeners : ep => {
      name            = "${var.name}-${l.subscription}"
      description     = "Reads ${l.database} into the report hash (entry point ${ep})."
      service_account = google_service_account.listener[ep]
      memory          = var.listener_memory
      timeout_seconds = var.listener_timeout_seconds
      max_instances   = var.listener_max_instances[ep]
      database        = l.database
      network_tags    = []
      env             = {}
      # Only its own database's read-only DSN.
      secrets   = { (l.dsn_env) = var.source_dsn_secrets[l.database] }
      publishes = ["report-aggregate", "report-parked"]
      push = {
        subscription = l.subscription
        topic        = l.topic
        identity     = google_service_account.listener_push[ep]
        delivery     = local.push_delivery
      }
    }
  }
}

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
