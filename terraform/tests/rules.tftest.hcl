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

# Variable validations, each broken once in one plan.
run "invalid_variables" {
  command = plan

  variables {
    # The timeout plus the 60 s backoff must fit in the 600 s hash TTL.
    listener_timeout_seconds  = 541
    aggregate_timeout_seconds = 560
    # Memorystore TLS needs Redis 6; the X minor of REDIS_6_X is accepted
    # (variants.tftest.hcl) but not a missing minor.
    redis_version = "REDIS_7"
    # V4 signed URLs last at most 7 days.
    signed_url_ttl_seconds = 604801
    # Every database needs its own ranges: a listener reaches only its own.
    database_cidrs = {
      plt_user = ["10.20.1.0/28"]
      plt_fund = ["10.20.2.0/28"]
    }
    # A subnet in another region than the functions.
    subnetwork = "projects/test-project/regions/us-central1/subnetworks/prod-functions"
    # Cloud Run needs a /26 at least.
    subnet_cidr = "10.8.0.0/27"
    # A row limit is a count; 0 turns it off.
    max_report_rows = -1
  }

  expect_failures = [
    var.listener_timeout_seconds,
    var.aggregate_timeout_seconds,
    var.redis_version,
    var.signed_url_ttl_seconds,
    var.database_cidrs,
    var.subnetwork,
    var.subnet_cidr,
    var.max_report_rows,
  ]
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
      plt_user = 40
      plt_fund = 60
      record   = 20
    }
  }

  expect_failures = [google_cloudfunctions2_function.function]
}
