# What every function shares: gen2 Go from the one source archive, internal
# ingress, Direct VPC egress, Redis over TLS with AUTH, traces to Cloud
# Trace, and either a push subscription of its own or a Cloud Scheduler job.
# What differs is the function's entry in local.functions, written in its
# own function_*.tf next to its service accounts. An entry, keyed by entry
# point, holds:
#
#   name, slug, description  function (Cloud Run service) name; slug names
#                      its network tag; description
#   service_account    its own runtime google_service_account
#   memory, cpu        cpu null lets Cloud Run size it from memory
#   timeout_seconds, max_instances, concurrency (requests per instance)
#   database           the database it connects to (connection budget,
#                      firewall)
#   dsn_env            the variable its DSN is read from: the database's
#                      secret, or a Cloud SQL DSN (cloud_sql_instances)
#   source_databases   further databases it reads, database => DSN
#                      variable (DrainTriggers' split estimates): each gets
#                      its DSN, egress, Cloud SQL grants and a share of the
#                      connection budget as the database above does
#   amqp               whether it connects to RabbitMQ (firewall)
#   env                plain environment besides local.common_env
#   secrets            env name => Secret Manager secret ID (read at version
#                      "latest"), besides the Redis AUTH string, the CA and
#                      the DSN
#   publishes          the topics it may publish to
#   subscribes         the pull subscriptions it consumes (pubsub.tf)
#   announces          whether it can make a record final: it then publishes
#                      report-completed and, with signed_url_ttl_seconds,
#                      signs download URLs (SIGNED_URL_TTL)
#   push               null, or its push subscription: subscription and
#                      topic names, identity (its own push service account)
#                      and delivery (local.push_delivery or
#                      local.dead_letter_delivery)
#   schedule           null, or its Cloud Scheduler job: cron, identity (its
#                      own scheduler service account), description

locals {
  functions = merge(
    local.listener_functions,
    local.aggregate_function,
    local.dead_letter_function,
    local.drain_triggers_function,
    local.sweep_function,
  )

  push_subscriptions  = { for ep, f in local.functions : ep => f.push if f.push != null }
  scheduled_functions = { for ep, f in local.functions : ep => f.schedule if f.schedule != null }

  # Each function's own network tag: the firewall rules name functions by it.
  function_tags = { for ep, f in local.functions : ep => "${var.name}-${f.slug}" }

  # Every database a function connects to, database => its DSN variable.
  function_databases = { for ep, f in local.functions : ep => merge(f.source_databases, { (f.database) = f.dsn_env }) }

  # Deliveries a push function may get at once: one per part of each of
  # max_in_flight reports (DrainTriggers admits no more reports; a report has at
  # most max_parts parts). Listeners and the aggregator size their max
  # instances from it (divided by their request concurrency), capped by
  # their *_max_instances variables.
  max_part_deliveries = var.max_in_flight * var.max_parts

  # Environment every function reads (shared/config: PubSub, Redis, DB and
  # the tracer).
  common_env = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    PUBSUB_NAME_PREFIX   = var.pubsub_name_prefix
    REDIS_ADDR           = "${google_redis_instance.state.host}:${google_redis_instance.state.port}"
    REDIS_TLS            = "true"
    STATE_TTL            = "${local.state_ttl_seconds}s"
    DB_MAX_CONNS         = tostring(var.db_connections_per_instance)
    TRACE_EXPORTER       = "gcp"
  }

  # A database's DSN: the secret the deployer made (a plain DSN with its
  # password), or for Cloud SQL one the module writes, with no password:
  # the connector signs in as the function's own service account, whose
  # MySQL user is its email up to the @ (shared/config.CloudSQLNet).
  dsn_secrets = merge(
    { record = var.record_dsn_secret },
    var.source_dsn_secrets,
  )
  cloud_sql_dsn = {
    for ep, dbs in local.function_databases : ep => {
      for db, env in dbs : env => "${split("@", local.functions[ep].service_account.email)[0]}@cloudsql(${local.cloud_sql[db].connection_name})/${local.cloud_sql[db].database}"
      if contains(keys(local.cloud_sql), db)
    }
  }

  function_env = {
    for ep, f in local.functions : ep => merge(
      local.common_env,
      f.env,
      f.announces && local.sign_urls ? { SIGNED_URL_TTL = "${var.signed_url_ttl_seconds}s" } : {},
      local.cloud_sql_dsn[ep],
    )
  }

  # Every function reads Memorystore's AUTH string and CA at the version
  # Terraform wrote: a new instance (or a rotated AUTH string or CA) makes
  # new versions, and the functions redeploy pinned to them (secrets.tf).
  redis_secrets = {
    REDIS_PASSWORD = {
      secret  = google_secret_manager_secret.redis_auth.secret_id
      version = google_secret_manager_secret_version.redis_auth.version
    }
    REDIS_CA_CERT = {
      secret  = google_secret_manager_secret.redis_ca.secret_id
      version = google_secret_manager_secret_version.redis_ca.version
    }
  }

  # The secrets each function mounts, by entry point and env name. The DSNs
  # and the AMQP URL are created outside Terraform and rotated by adding a
  # version, so functions read "latest".
  function_secrets = {
    for ep, f in local.functions : ep => merge(
      local.redis_secrets,
      { for env, secret in f.secrets : env => { secret = secret, version = "latest" } },
      { for db, env in local.function_databases[ep] : env => { secret = local.dsn_secrets[db], version = "latest" } if !contains(keys(local.cloud_sql), db) },
    )
  }

  # Open connections per database at full scale-out, checked against
  # var.db_connection_limits by the functions' precondition. A pool is per
  # instance and per database, whatever its request concurrency: DrainTriggers'
  # pools of its source databases count as the listeners' do.
  db_users = {
    for db in distinct(flatten([for dbs in values(local.function_databases) : keys(dbs)])) :
    db => [for ep in sort(keys(local.functions)) : ep if contains(keys(local.function_databases[ep]), db)]
  }
  db_connections = {
    for db, eps in local.db_users : db => sum([for ep in eps : local.functions[ep].max_instances]) * var.db_connections_per_instance
  }
  over_budget = sort([for db, n in local.db_connections : db if n > var.db_connection_limits[db]])
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  project     = var.project_id
  name        = each.value.name
  location    = var.region
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime           = local.go_runtime
    entry_point       = each.key
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket     = google_storage_bucket.source.name
        object     = google_storage_bucket_object.source.name
        generation = google_storage_bucket_object.source.generation
      }
    }
  }

  service_config {
    service_account_email            = each.value.service_account.email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout_seconds
    min_instance_count               = 0
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency

    direct_vpc_network_interface {
      network    = local.network_id
      subnetwork = local.subnetwork_id
      tags       = [local.function_tags[each.key]]
    }
    direct_vpc_egress = var.vpc_egress

    environment_variables = local.function_env[each.key]

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets[each.key]

      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  lifecycle {
    # Every database the function connects to (its own and, for DrainTriggers,
    # the source databases it estimates from) must fit its budget.
    precondition {
      condition     = length(setintersection(local.over_budget, keys(local.function_databases[each.key]))) == 0
      error_message = join(" ", [for db in sort(setintersection(local.over_budget, keys(local.function_databases[each.key]))) : "The functions using ${db} (${join(", ", [for ep in local.db_users[db] : "${ep} ${local.functions[ep].max_instances} instances"])}) could open ${local.db_connections[db]} connections at ${var.db_connections_per_instance} per instance (db_connections_per_instance, DB_MAX_CONNS), more than db_connection_limits.${db} (${var.db_connection_limits[db]}). Listeners and Aggregate run min(max_in_flight x max_parts = ${local.max_part_deliveries}, their *_max_instances) instances: raise the limit, or lower listener_max_instances / aggregate_max_instances, max_in_flight, max_parts or db_connections_per_instance."])
    }

    # Saturation is not failure: with every instance busy Cloud Run answers
    # 429, Pub/Sub counts a failed delivery, and after 6 the report is
    # FAILED. DrainTriggers admits at most max_in_flight reports at once, and
    # each of them is one message at a time for each push function.
    precondition {
      condition     = each.value.push == null || each.value.max_instances * each.value.concurrency >= var.max_in_flight
      error_message = "${each.key} serves ${each.value.max_instances * each.value.concurrency} requests at once (max instances x request concurrency), fewer than max_in_flight (${var.max_in_flight}) reports in flight: the rest would be answered 429 and count as failed deliveries."
    }
  }

  depends_on = [
    google_project_service.this,
    time_sleep.iam_propagation,
  ]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions

  project = var.project_id
  name    = "${var.pubsub_name_prefix}${each.value.subscription}"
  topic   = google_pubsub_topic.topic[each.value.topic].id

  labels                     = local.labels
  ack_deadline_seconds       = local.push_ack_deadline_seconds
  message_retention_duration = local.push_message_retention

  expiration_policy {
    ttl = ""
  }

  push_config {
    push_endpoint = google_cloudfunctions2_function.function[each.key].service_config[0].uri

    oidc_token {
      service_account_email = each.value.identity.email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic[each.value.delivery.dead_letter_topic].id
    max_delivery_attempts = each.value.delivery.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = each.value.delivery.minimum_backoff
    maximum_backoff = each.value.delivery.maximum_backoff
  }

  # Pushing before the invoker grant and the agent's token grant have
  # propagated would spend deliveries on 403s.
  depends_on = [
    time_sleep.invoker_propagation,
    time_sleep.agent_propagation,
  ]
}

resource "google_cloud_scheduler_job" "scheduled" {
  for_each = local.scheduled_functions

  project     = var.project_id
  name        = local.functions[each.key].name
  region      = var.region
  description = each.value.description
  schedule    = each.value.cron
  time_zone   = "Etc/UTC"

  attempt_deadline = "${local.functions[each.key].timeout_seconds}s"

  # A missed tick is covered by the next one.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function[each.key].service_config[0].uri

    oidc_token {
      service_account_email = each.value.identity.email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.this,
    time_sleep.invoker_propagation,
  ]
}
