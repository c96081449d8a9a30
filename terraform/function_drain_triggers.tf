# DrainTriggers, the trigger consumer. Cloud Functions only run during a request, so
# Cloud Scheduler calls this HTTP function every minute; each call consumes
# report.trigger for DRAIN_FOR (50 s), admits at most MAX_IN_FLIGHT reports
# (the rest wait on THROTTLE_QUEUE), republishes each admitted trigger to
# report-stage-1 (acking only after Pub/Sub confirmed), forwards the
# completion events of its pull subscription report-completed-amqp to the
# RabbitMQ exchange COMPLETED_EXCHANGE, and returns. Before publishing it
# splits each report into key-range parts (PART_ROWS, MAX_PARTS) from
# estimates of its source databases (source_databases below) and publishes
# one stage-1 message per part. One instance at most:
# one drain at a time. The function itself, its scheduler job and the
# grants its entry implies are in functions.tf and iam.tf.

locals {
  drain_triggers_function = {
    DrainTriggers = {
      name            = "${var.name}-drain-triggers"
      slug            = "drain"
      description     = "Moves report triggers from RabbitMQ to Pub/Sub and completion events back (entry point DrainTriggers)."
      service_account = google_service_account.drain_triggers
      memory          = "256Mi"
      cpu             = null
      timeout_seconds = var.drain_triggers_timeout_seconds
      # One consumer at a time; a tick that finds it busy is skipped and the
      # next tick drains what is left.
      max_instances = 1
      concurrency   = 1
      database      = "record"
      # The source databases it reads EXPLAIN estimates from to split each
      # report into parts (report.SplitBy: the withdrawals, plt_fund), each
      # with its own pool of db_connections_per_instance connections
      # (topology.json's split_databases, from the reports' SplitBy).
      source_databases = local.topology.split_databases
      amqp             = true
      env = {
        DRAIN_FOR               = "${var.drain_for_seconds}s"
        TRIGGER_QUEUE           = var.trigger_queue
        MAX_IN_FLIGHT           = tostring(var.max_in_flight)
        THROTTLE_QUEUE          = var.throttle_queue
        THROTTLE_DELAY          = "${var.throttle_delay_seconds}s"
        REDIS_MEMORY_HIGH_WATER = tostring(var.redis_memory_high_water)
        COMPLETED_EXCHANGE      = var.completed_exchange
        PART_ROWS               = tostring(var.part_rows)
        MAX_PARTS               = tostring(var.max_parts)
      }
      dsn_env    = "RECORD_DSN"
      secrets    = { AMQP_URL = var.amqp_url_secret }
      publishes  = [local.stage_topics[0], "report-parked", "report-completed"]
      subscribes = ["report-completed-amqp"]
      announces  = true
      push       = null
      schedule = {
        cron        = var.drain_schedule
        identity    = google_service_account.drain_scheduler
        description = "Calls DrainTriggers, which consumes report.trigger for DRAIN_FOR."
      }
    }
  }
}

resource "google_service_account" "drain_triggers" {
  project      = var.project_id
  account_id   = "${var.name}-drain"
  display_name = "fanout export: DrainTriggers function"

  depends_on = [google_project_service.this]
}

# The identity Cloud Scheduler presents (OIDC) when calling DrainTriggers.
resource "google_service_account" "drain_scheduler" {
  project      = var.project_id
  account_id   = "${var.name}-drain-sched"
  display_name = "fanout export: Cloud Scheduler invoker of DrainTriggers"

  depends_on = [google_project_service.this]
}
