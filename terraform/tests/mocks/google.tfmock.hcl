# Mocked google provider for terraform test: no credentials, no network.
# The tests plan (command = plan) with override_during = plan, so a
# computed attribute is known in the plan only when it is given here; the
# rest stay unknown and no assertion may depend on them. Values the
# provider validates, or that the assertions compare, are realistic: the
# addresses Google would assign to the service accounts (every run uses
# project test-project and name prefix fanout), the functions' URLs, the
# topics' IDs, the project's number, Memorystore's TLS endpoint. The
# listeners' and the stage topics' are in topology.tfmock.hcl, which
# `go generate ./shared/topology` writes from the report definitions.

mock_data "google_project" {
  defaults = {
    number     = "123456789012"
    project_id = "test-project"
  }
}

mock_resource "google_redis_instance" {
  defaults = {
    host        = "10.9.0.4"
    port        = 6378
    auth_string = "mock-auth-string"
    # During a CA rotation Memorystore serves two: the secret must hold
    # both (a function trusting only the first fails after the switch).
    server_ca_certs = [
      { cert = "-----BEGIN CERTIFICATE-----\nMOCK-CA-CURRENT\n-----END CERTIFICATE-----" },
      { cert = "-----BEGIN CERTIFICATE-----\nMOCK-CA-NEXT\n-----END CERTIFICATE-----" },
    ]
    create_time = "2026-01-01T00:00:00Z"
  }
}

# The external secrets' metadata, as the data source reads it: a live
# latest version (no destroy time). Never the value (fetch_secret_data).
mock_data "google_secret_manager_secret_version" {
  defaults = {
    version      = "3"
    enabled      = true
    destroy_time = ""
    create_time  = "2026-01-01T00:00:00Z"
  }
}

mock_resource "google_project_iam_custom_role" {
  defaults = {
    name = "projects/test-project/roles/fanout_url_signer"
  }
}

mock_resource "google_secret_manager_secret_version" {
  defaults = {
    version = "1"
  }
}

mock_resource "google_storage_bucket_object" {
  defaults = {
    generation = 1764590400000000
  }
}

mock_resource "google_artifact_registry_repository" {
  defaults = {
    id   = "projects/test-project/locations/europe-west1/repositories/fanout-functions"
    name = "fanout-functions"
  }
}

mock_resource "google_compute_network" {
  defaults = {
    id = "projects/test-project/global/networks/fanout-vpc"
  }
}

mock_resource "google_compute_subnetwork" {
  defaults = {
    id = "projects/test-project/regions/europe-west1/subnetworks/fanout-functions"
  }
}

override_resource {
  target = google_service_account.build
  values = {
    email  = "fanout-build@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-build@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-build@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-build@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.aggregate
  values = {
    email  = "fanout-aggregate@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-aggregate@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-aggregate@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-aggregate@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.aggregate_push
  values = {
    email  = "fanout-aggregate-push@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-aggregate-push@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-aggregate-push@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-aggregate-push@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.dead_letter
  values = {
    email  = "fanout-dead-letter@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-dead-letter@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-dead-letter@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-dead-letter@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.dead_letter_push
  values = {
    email  = "fanout-dead-letter-push@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-dead-letter-push@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-dead-letter-push@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-dead-letter-push@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.drain_triggers
  values = {
    email  = "fanout-drain@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-drain@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-drain@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-drain@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.drain_scheduler
  values = {
    email  = "fanout-drain-sched@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-drain-sched@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-drain-sched@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-drain-sched@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.sweep
  values = {
    email  = "fanout-sweep@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-sweep@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-sweep@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-sweep@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.sweep_scheduler
  values = {
    email  = "fanout-sweep-sched@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-sweep-sched@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-sweep-sched@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-sweep-sched@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_cloudfunctions2_function.function["Aggregate"]
  values = {
    service_config = {
      uri = "https://fanout-aggregate-a1b2c3d4e5-ew.a.run.app"
    }
  }
}

override_resource {
  target = google_cloudfunctions2_function.function["DeadLetter"]
  values = {
    service_config = {
      uri = "https://fanout-dead-letter-a1b2c3d4e5-ew.a.run.app"
    }
  }
}

override_resource {
  target = google_cloudfunctions2_function.function["DrainTriggers"]
  values = {
    service_config = {
      uri = "https://fanout-drain-triggers-a1b2c3d4e5-ew.a.run.app"
    }
  }
}

override_resource {
  target = google_cloudfunctions2_function.function["Sweep"]
  values = {
    service_config = {
      uri = "https://fanout-sweep-a1b2c3d4e5-ew.a.run.app"
    }
  }
}

override_resource {
  target = google_pubsub_topic.topic["report-aggregate"]
  values = {
    id = "projects/test-project/topics/report-aggregate"
  }
}

override_resource {
  target = google_pubsub_topic.topic["report-dead-letter"]
  values = {
    id = "projects/test-project/topics/report-dead-letter"
  }
}

override_resource {
  target = google_pubsub_topic.topic["report-parked"]
  values = {
    id = "projects/test-project/topics/report-parked"
  }
}

override_resource {
  target = google_pubsub_topic.topic["report-completed"]
  values = {
    id = "projects/test-project/topics/report-completed"
  }
}
