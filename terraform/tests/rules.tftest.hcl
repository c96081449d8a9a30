# Each rule the module enforces at plan time, broken by variables: the run
# passes only if exactly the named rule fails (expect_failures), so a rule
# that stopped working, or a run that fails for another reason, fails the
# test.

mock_provider "google" {
  source          = "./tests/mocks"
  override_during = plan
}

mock_provider "time" {
  override_during = plan
}

variables {
  project_id = "test-project"
  name       = "fanout"
  network    = "projects/test-project/global/networks/prod"
  subnetwork = "projects/test-project/regions/europe-west1/subnetworks/prod-functions"
  database_cidrs = {
    plt_user = ["10.20.1.0/28"]
    plt_fund = ["10.20.2.0/28"]
    record   = ["10.20.0.0/28"]
  }
  amqp_host_cidr    = "10.20.0.5/32"
  record_dsn_secret = "fanout-record-dsn"
  source_dsn_secrets = {
    plt_user = "fanout-dsn-plt-user"
    plt_fund = "fanout-dsn-plt-fund"
  }
  amqp_url_secret = "fanout-amqp-url"
}

# Every variable validation, each broken once in one plan (a failed
# validation stops the plan before any resource, so this run is cheap).
# local/tfcheck's TestEveryValidationIsExercised checks that every
# validation block of variables.tf is named here (or, for a variable with
# several, in as many runs).
run "invalid_variables" {
  command = plan

  variables {
    project_id         = "Bad_Project"
    region             = "europe west1"
    name               = "f.x"
    pubsub_name_prefix = "prod+"
    source_archive     = "source.tar.gz"
    labels             = { Team = "reports" }
    project_number     = "12ab"
    network            = "prod"
    subnet_cidr        = "10.8.0.0/27"
    firewall_priority  = 65000
    google_apis_cidr   = "0.0.0.0/0"
    vpc_egress         = "ALL"
    # Every database needs its own ranges: a listener reaches only its own.
    database_cidrs = {
      plt_user = ["10.20.1.0/28"]
      plt_fund = ["10.20.2.0/28"]
    }
    database_port         = 70000
    amqp_host_cidr        = "rabbit"
    amqp_port             = 0
    redis_tier            = "PREMIUM"
    redis_memory_size_gb  = 0
    redis_version         = "REDIS_7"
    redis_connect_mode    = "PEERING"
    redis_deletion_policy = "ABANDON"
    amqp_url_secret       = "projects/test-project/secrets/amqp"
    cloud_sql_instances = {
      reports = { connection_name = "reports" }
    }
    db_connection_limits        = { plt_user = 40 }
    db_connections_per_instance = 0
    # A key that is no listener of topology.json (a typo, a removed source).
    listener_max_instances = { ListenUserTagRelation = 10, ListenOrders = 5 }
    # The timeout plus the 60 s backoff must fit in the 600 s hash TTL.
    listener_timeout_seconds    = 541
    listener_memory             = "512MB"
    aggregate_max_instances     = 0
    aggregate_timeout_seconds   = 560
    aggregate_memory            = "1G"
    dead_letter_max_instances   = 21
    dead_letter_concurrency     = 81
    dead_letter_timeout_seconds = 5
    drain_for_seconds           = 56
    drain_schedule              = "* * *"
    trigger_queue               = ""
    sweep_schedule              = "daily"
    sweep_timeout_seconds       = 10
    sweep_pending_after         = "15 minutes"
    sweep_processing_after      = "two hours"
    max_in_flight               = 0
    throttle_queue              = ""
    throttle_delay_seconds      = 0
    redis_memory_high_water     = 1.5
    completed_exchange          = ""
    # config.DrainTriggers: PART_ROWS at least 1, MAX_PARTS 1 to config.MaxParts.
    part_rows = 0
    max_parts = 1025
    # A row limit is a count; 0 turns it off.
    max_report_rows        = -1
    report_retention_days  = 0
    signed_url_ttl_seconds = 604801
    # Cloud Storage keeps soft-deleted objects 7 to 90 days, or not at all.
    report_soft_delete_days      = 3
    source_retention_days        = 0
    iam_propagation_seconds      = 601
    notification_channels        = ["channel-1"]
    alert_oldest_unacked_seconds = 30
    alert_redis_memory_ratio     = 1
    alert_function_error_ratio   = 0
  }

  expect_failures = [
    var.project_id,
    var.region,
    var.name,
    var.pubsub_name_prefix,
    var.source_archive,
    var.labels,
    var.project_number,
    var.network,
    var.subnet_cidr,
    var.firewall_priority,
    var.google_apis_cidr,
    var.vpc_egress,
    var.database_cidrs,
    var.database_port,
    var.amqp_host_cidr,
    var.amqp_port,
    var.redis_tier,
    var.redis_memory_size_gb,
    var.redis_version,
    var.redis_connect_mode,
    var.redis_deletion_policy,
    var.amqp_url_secret,
    var.cloud_sql_instances,
    var.db_connection_limits,
    var.db_connections_per_instance,
    var.listener_max_instances,
    var.listener_timeout_seconds,
    var.listener_memory,
    var.aggregate_max_instances,
    var.part_rows,
    var.max_parts,
    var.aggregate_timeout_seconds,
    var.aggregate_memory,
    var.dead_letter_max_instances,
    var.dead_letter_concurrency,
    var.dead_letter_timeout_seconds,
    var.drain_for_seconds,
    var.drain_schedule,
    var.trigger_queue,
    var.sweep_schedule,
    var.sweep_timeout_seconds,
    var.sweep_pending_after,
    var.sweep_processing_after,
    var.max_in_flight,
    var.throttle_queue,
    var.throttle_delay_seconds,
    var.redis_memory_high_water,
    var.completed_exchange,
    var.max_report_rows,
    var.report_retention_days,
    var.signed_url_ttl_seconds,
    var.report_soft_delete_days,
    var.source_retention_days,
    var.iam_propagation_seconds,
    var.notification_channels,
    var.alert_oldest_unacked_seconds,
    var.alert_redis_memory_ratio,
    var.alert_function_error_ratio,
  ]
}

# The rules that read another variable are not evaluated while that one is
# invalid: each is broken here with the others valid.
run "invalid_cross_variable_rules" {
  command = plan

  variables {
    # A subnet in another region than the functions.
    subnetwork = "projects/test-project/regions/us-central1/subnetworks/prod-functions"
    # A /30 is too small for DIRECT_PEERING.
    redis_reserved_ip_range = "10.9.0.0/30"
    # No record secret and no Cloud SQL record database; no plt_fund DSN.
    record_dsn_secret  = null
    source_dsn_secrets = { plt_user = "fanout-dsn-plt-user" }
    # Above 600 s (and far from drain_for_seconds).
    drain_triggers_timeout_seconds = 700
  }

  expect_failures = [
    var.subnetwork,
    var.redis_reserved_ip_range,
    var.record_dsn_secret,
    var.source_dsn_secrets,
    var.drain_triggers_timeout_seconds,
  ]
}

# drain_triggers_timeout_seconds' second rule: within its bounds, but too
# close to DRAIN_FOR to finish the last publishes.
run "drain_timeout_too_close_to_drain_for" {
  command = plan

  variables {
    drain_triggers_timeout_seconds = 70
  }

  expect_failures = [var.drain_triggers_timeout_seconds]
}

# A Cloud SQL database needs no DSN secret, and may not have one too: the
# secret would be checked and granted but never read.
run "dsn_secret_for_a_cloud_sql_database" {
  command = plan

  variables {
    cloud_sql_instances = {
      plt_user = { connection_name = "db-project:europe-west1:users" }
    }
  }

  expect_failures = [var.source_dsn_secrets]
}

# An external secret whose latest version is destroyed fails the plan,
# before Redis is created, naming the secret.
run "external_secret_destroyed" {
  command = plan

  override_data {
    target = data.google_secret_manager_secret_version.external["amqp-url"]
    values = {
      version      = "4"
      destroy_time = "2026-11-30T10:00:00Z"
    }
  }

  expect_failures = [data.google_secret_manager_secret_version.external]
}

# MAX_REPORT_ROWS is read as a whole number: 2.5 would stop every function
# at startup, so planning refuses it.
run "max_report_rows_fraction_rejected" {
  command = plan

  variables {
    max_report_rows = 2.5
  }

  expect_failures = [var.max_report_rows]
}

run "redis_5_rejected" {
  command = plan

  variables {
    redis_version = "REDIS_5_0"
  }

  expect_failures = [var.redis_version]
}

# A /26 passes the variable's own rule but cannot hold the default
# instances (176 addresses).
run "subnet_too_small_for_instances" {
  command = plan

  variables {
    create_network = true
    subnet_cidr    = "10.8.0.0/26"
  }

  expect_failures = [google_compute_subnetwork.functions]
}

# 11 reports in flight, but the listeners and Aggregate serve 10 requests
# at once: the 11th would be answered 429.
run "max_in_flight_not_covered" {
  command = plan

  variables {
    max_in_flight = 11
  }

  expect_failures = [google_cloudfunctions2_function.function]
}

# The record database's readers could open 28 connections (14 instances x
# 2), more than 20 allowed.
run "record_connections_exceed_limit" {
  command = plan

  variables {
    db_connection_limits = {
      plt_user = 100
      plt_fund = 100
      record   = 20
    }
  }

  expect_failures = [google_cloudfunctions2_function.function]
}

# plt_fund's listeners alone (each at its default cap of 10 instances x 2
# connections) fit the limit exactly; DrainTriggers' pool of plt_fund for
# its split estimates (1 instance x 2) takes it over. The limit is counted
# from topology.json, so a new listener keeps this exact.
run "fund_connections_exceed_limit_with_shim_pool" {
  command = plan

  variables {
    db_connection_limits = {
      plt_user = 100
      plt_fund = 20 * length([for ep, l in jsondecode(file("topology.json")).listeners : ep if l.database == "plt_fund"])
      record   = 40
    }
  }

  expect_failures = [google_cloudfunctions2_function.function]
}
