# The module as most deployments use it: defaults, an existing VPC in the
# project, no signed URLs. One plan, many assertions (a plan of the whole
# module costs a few seconds of CPU). Values that only the provider would
# know come from tests/mocks; everything asserted here is in the plan.
#
# Run: terraform test (from a copy of terraform/, see local/terraform-check.sh).

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
  # A source database of topology.json not named here gets a range of its own.
  database_cidrs = merge(
    { for i, db in sort(keys(jsondecode(file("topology.json")).source_databases)) : db => ["10.21.${i}.0/28"] },
    {
      plt_user = ["10.20.1.0/28"]
      plt_fund = ["10.20.2.0/28"]
      record   = ["10.20.0.0/28"]
    },
  )
  amqp_host_cidr     = "10.20.0.5/32"
  record_dsn_secret  = "fanout-record-dsn"
  source_dsn_secrets = { for db in keys(jsondecode(file("topology.json")).source_databases) : db => "fanout-dsn-${replace(db, "_", "-")}" }
  amqp_url_secret    = "fanout-amqp-url"
  labels = {
    team = "reports"
    env  = "test"
  }

  # What the assertions compare against (not module variables). The
  # listeners' expectations are built from topology.json, the file the
  # module reads (go generate ./shared/topology): one function, push
  # subscription, runtime and push identity, DSN secret and set of grants
  # per listener, named by its entry point, slug, subscription and
  # database. The other functions' are written out.
  topology     = jsondecode(file("topology.json"))
  entry_points = sort(keys(jsondecode(file("topology.json")).functions))
  push_functions = merge(
    { for ep, l in jsondecode(file("topology.json")).listeners : ep => { subscription = l.subscription, topic = l.topic, identity = "fanout-${l.slug}-push" } },
    {
      Aggregate  = { subscription = "aggregate", topic = "report-aggregate", identity = "fanout-aggregate-push" }
      DeadLetter = { subscription = "dead-letter", topic = "report-dead-letter", identity = "fanout-dead-letter-push" }
    },
  )
  runtime_identities = merge(
    { for ep, l in jsondecode(file("topology.json")).listeners : ep => "fanout-${l.slug}" },
    {
      Aggregate     = "fanout-aggregate"
      DeadLetter    = "fanout-dead-letter"
      DrainTriggers = "fanout-drain"
      Sweep         = "fanout-sweep"
    },
  )
  secret_env_names = concat(["REDIS_PASSWORD", "REDIS_CA_CERT", "RECORD_DSN", "AMQP_URL"], [for db, d in jsondecode(file("topology.json")).source_databases : d.dsn_env])
  function_secrets = merge({ for ep, l in jsondecode(file("topology.json")).listeners : ep => { (l.dsn_env) = "fanout-dsn-${replace(l.database, "_", "-")}", REDIS_CA_CERT = "fanout-redis-ca", REDIS_PASSWORD = "fanout-redis-auth" } }, {
    Aggregate     = { RECORD_DSN = "fanout-record-dsn", REDIS_CA_CERT = "fanout-redis-ca", REDIS_PASSWORD = "fanout-redis-auth" }
    DeadLetter    = { RECORD_DSN = "fanout-record-dsn", REDIS_CA_CERT = "fanout-redis-ca", REDIS_PASSWORD = "fanout-redis-auth" }
    DrainTriggers = { AMQP_URL = "fanout-amqp-url", DSN_PLT_FUND = "fanout-dsn-plt-fund", RECORD_DSN = "fanout-record-dsn", REDIS_CA_CERT = "fanout-redis-ca", REDIS_PASSWORD = "fanout-redis-auth" }
    Sweep         = { AMQP_URL = "fanout-amqp-url", RECORD_DSN = "fanout-record-dsn", REDIS_CA_CERT = "fanout-redis-ca", REDIS_PASSWORD = "fanout-redis-auth" }
  })

  # Every grant of every identity, from README.md's IAM table: those that
  # follow from topology.json in expected_topology_grants (each listener's
  # runtime identity publishes "done" and parks, reads its own database's
  # DSN and Redis; its push identity invokes it; the Pub/Sub agent mints the
  # push identity's tokens and subscribes; Aggregate publishes the stage
  # topics after the first), the rest written out by hand in
  # expected_grants; an identity's are both lists. Anything more, or less,
  # fails.
  expected_topology_grants = merge(
    { for ep, l in jsondecode(file("topology.json")).listeners : "serviceAccount:fanout-${l.slug}@test-project.iam.gserviceaccount.com" => [
      "roles/cloudtrace.agent on project test-project",
      "roles/pubsub.publisher on topic report-aggregate",
      "roles/pubsub.publisher on topic report-parked",
      "roles/secretmanager.secretAccessor on secret fanout-dsn-${replace(l.database, "_", "-")}",
      "roles/secretmanager.secretAccessor on secret fanout-redis-auth",
      "roles/secretmanager.secretAccessor on secret fanout-redis-ca",
    ] },
    { for ep, l in jsondecode(file("topology.json")).listeners : "serviceAccount:fanout-${l.slug}-push@test-project.iam.gserviceaccount.com" => ["roles/run.invoker on service fanout-${l.subscription}"] },
    {
      # Aggregate fans out every stage after the first.
      "serviceAccount:fanout-aggregate@test-project.iam.gserviceaccount.com" = [for t in slice(jsondecode(file("topology.json")).stage_topics, 1, length(jsondecode(file("topology.json")).stage_topics)) : "roles/pubsub.publisher on topic ${t}"]
      "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com" = flatten([for ep, l in jsondecode(file("topology.json")).listeners : [
        "roles/iam.serviceAccountTokenCreator on service account projects/test-project/serviceAccounts/fanout-${l.slug}-push@test-project.iam.gserviceaccount.com",
        "roles/pubsub.subscriber on subscription ${l.subscription}",
      ]])
    },
  )
  expected_grants = {
    # Least privilege for builds: its logs, this module's repository and
    # the source bucket, not roles/run.builder on the project.
    "serviceAccount:fanout-build@test-project.iam.gserviceaccount.com" = [
      "roles/artifactregistry.writer on repository fanout-functions",
      "roles/logging.logWriter on project test-project",
      "roles/storage.objectViewer on bucket test-project-fanout-source",
    ]
    "serviceAccount:fanout-aggregate@test-project.iam.gserviceaccount.com" = [
      "roles/cloudtrace.agent on project test-project",
      "roles/pubsub.publisher on topic report-completed",
      "roles/pubsub.publisher on topic report-parked",
      "roles/secretmanager.secretAccessor on secret fanout-record-dsn",
      "roles/secretmanager.secretAccessor on secret fanout-redis-auth",
      "roles/secretmanager.secretAccessor on secret fanout-redis-ca",
      "roles/storage.objectUser on bucket test-project-fanout-reports",
    ]
    "serviceAccount:fanout-dead-letter@test-project.iam.gserviceaccount.com" = [
      "roles/cloudtrace.agent on project test-project",
      "roles/pubsub.publisher on topic report-completed",
      "roles/pubsub.publisher on topic report-parked",
      "roles/secretmanager.secretAccessor on secret fanout-record-dsn",
      "roles/secretmanager.secretAccessor on secret fanout-redis-auth",
      "roles/secretmanager.secretAccessor on secret fanout-redis-ca",
      # A failed report's part segments: delete under tmp/ only.
      "roles/storage.objectUser on bucket test-project-fanout-reports if resource.name.startsWith(\"projects/_/buckets/test-project-fanout-reports/objects/tmp/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"tmp/\")",
    ]
    "serviceAccount:fanout-drain@test-project.iam.gserviceaccount.com" = [
      "roles/cloudtrace.agent on project test-project",
      "roles/pubsub.publisher on topic report-completed",
      "roles/pubsub.publisher on topic report-parked",
      "roles/pubsub.publisher on topic report-stage-1",
      "roles/pubsub.subscriber on subscription report-completed-amqp",
      "roles/secretmanager.secretAccessor on secret fanout-amqp-url",
      "roles/secretmanager.secretAccessor on secret fanout-dsn-plt-fund",
      "roles/secretmanager.secretAccessor on secret fanout-record-dsn",
      "roles/secretmanager.secretAccessor on secret fanout-redis-auth",
      "roles/secretmanager.secretAccessor on secret fanout-redis-ca",
    ]
    "serviceAccount:fanout-sweep@test-project.iam.gserviceaccount.com" = [
      "roles/cloudtrace.agent on project test-project",
      "roles/pubsub.publisher on topic report-completed",
      "roles/secretmanager.secretAccessor on secret fanout-amqp-url",
      "roles/secretmanager.secretAccessor on secret fanout-record-dsn",
      "roles/secretmanager.secretAccessor on secret fanout-redis-auth",
      "roles/secretmanager.secretAccessor on secret fanout-redis-ca",
    ]
    "serviceAccount:fanout-aggregate-push@test-project.iam.gserviceaccount.com" = [
      "roles/run.invoker on service fanout-aggregate",
    ]
    "serviceAccount:fanout-dead-letter-push@test-project.iam.gserviceaccount.com" = [
      "roles/run.invoker on service fanout-dead-letter",
    ]
    "serviceAccount:fanout-drain-sched@test-project.iam.gserviceaccount.com" = [
      "roles/run.invoker on service fanout-drain-triggers",
    ]
    "serviceAccount:fanout-sweep-sched@test-project.iam.gserviceaccount.com" = [
      "roles/run.invoker on service fanout-sweep",
    ]
    "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com" = [
      "roles/iam.serviceAccountTokenCreator on service account projects/test-project/serviceAccounts/fanout-aggregate-push@test-project.iam.gserviceaccount.com",
      "roles/iam.serviceAccountTokenCreator on service account projects/test-project/serviceAccounts/fanout-dead-letter-push@test-project.iam.gserviceaccount.com",
      "roles/pubsub.publisher on topic report-dead-letter",
      "roles/pubsub.publisher on topic report-parked",
      "roles/pubsub.subscriber on subscription aggregate",
      "roles/pubsub.subscriber on subscription dead-letter",
    ]
  }
}

run "defaults" {
  command = plan

  # --- Functions -----------------------------------------------------------

  assert {
    condition     = sort(keys(google_cloudfunctions2_function.function)) == sort(var.entry_points)
    error_message = "Deployed entry points: ${jsonencode(sort(keys(google_cloudfunctions2_function.function)))}."
  }

  assert {
    condition     = alltrue([for ep, f in google_cloudfunctions2_function.function : f.build_config[0].entry_point == ep && f.build_config[0].runtime == var.topology.go_runtime])
    error_message = "Every function builds its own entry point with runtime ${var.topology.go_runtime} (go.mod's)."
  }

  assert {
    condition     = alltrue([for f in google_cloudfunctions2_function.function : f.service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"])
    error_message = "Functions with ingress other than ALLOW_INTERNAL_ONLY: ${jsonencode([for ep, f in google_cloudfunctions2_function.function : ep if f.service_config[0].ingress_settings != "ALLOW_INTERNAL_ONLY"])}."
  }

  assert {
    condition     = { for ep, f in google_cloudfunctions2_function.function : ep => f.service_config[0].service_account_email } == { for ep, id in var.runtime_identities : ep => "${id}@test-project.iam.gserviceaccount.com" }
    error_message = "Each function runs as its own service account: ${jsonencode({ for ep, f in google_cloudfunctions2_function.function : ep => f.service_config[0].service_account_email })}."
  }

  assert {
    condition     = alltrue([for f in google_cloudfunctions2_function.function : f.build_config[0].service_account == google_service_account.build.id && f.build_config[0].docker_repository == google_artifact_registry_repository.functions.id])
    error_message = "Every build runs as the build service account and pushes to the module's repository."
  }

  assert {
    condition     = alltrue([for f in google_cloudfunctions2_function.function : f.build_config[0].source[0].storage_source[0].object == "fanoutexport/source.zip" && f.build_config[0].source[0].storage_source[0].generation == google_storage_bucket_object.source.generation])
    error_message = "Every function is pinned to the live generation of the source archive."
  }

  assert {
    condition = alltrue([for ep, f in google_cloudfunctions2_function.function :
      f.service_config[0].direct_vpc_network_interface[0].network == var.network &&
      f.service_config[0].direct_vpc_network_interface[0].subnetwork == var.subnetwork &&
      f.service_config[0].direct_vpc_network_interface[0].tags == tolist([output.function_network_tags[ep]]) &&
      f.service_config[0].direct_vpc_egress == "VPC_EGRESS_ALL_TRAFFIC"
    ])
    error_message = "Every function sends all its traffic through the given subnet (Direct VPC) with its own network tag, so the firewall decides."
  }

  assert {
    condition     = length(google_compute_network.vpc) == 0 && length(google_compute_subnetwork.functions) == 0
    error_message = "No network is created unless create_network is set."
  }

  assert {
    condition     = { for ep, f in google_cloudfunctions2_function.function : ep => [f.service_config[0].max_instance_count, f.service_config[0].max_instance_request_concurrency] } == merge({ for ep in keys(var.topology.listeners) : ep => [10, 1] }, { Aggregate = [10, 1], DeadLetter = [2, 5], DrainTriggers = [1, 1], Sweep = [1, 1] })
    error_message = "Max instances and request concurrency: ${jsonencode({ for ep, f in google_cloudfunctions2_function.function : ep => [f.service_config[0].max_instance_count, f.service_config[0].max_instance_request_concurrency] })}."
  }

  assert {
    condition     = google_cloudfunctions2_function.function["DeadLetter"].service_config[0].available_cpu == "1"
    error_message = "DeadLetter serves 5 requests per instance, which Cloud Run allows only with a whole CPU."
  }

  # Saturation is not failure: every push function serves MAX_IN_FLIGHT
  # requests at once.
  assert {
    condition = alltrue([for ep, p in var.push_functions :
      google_cloudfunctions2_function.function[ep].service_config[0].max_instance_count * google_cloudfunctions2_function.function[ep].service_config[0].max_instance_request_concurrency >= tonumber(google_cloudfunctions2_function.function["DrainTriggers"].service_config[0].environment_variables["MAX_IN_FLIGHT"])
    ])
    error_message = "A push function serves fewer requests at once than MAX_IN_FLIGHT reports may be in flight."
  }

  # The report hash's TTL covers a delivery that hangs right after a write
  # until its timeout, plus the backoff before the next delivery.
  assert {
    condition = alltrue([for ep in concat(keys(var.topology.listeners), ["Aggregate"]) :
      google_cloudfunctions2_function.function[ep].service_config[0].timeout_seconds + tonumber(trimsuffix(google_pubsub_subscription.push[ep].retry_policy[0].maximum_backoff, "s")) <= tonumber(trimsuffix(google_cloudfunctions2_function.function[ep].service_config[0].environment_variables["STATE_TTL"], "s"))
    ])
    error_message = "timeout + backoff exceeds STATE_TTL for: ${jsonencode([for ep in concat(keys(var.topology.listeners), ["Aggregate"]) : ep if google_cloudfunctions2_function.function[ep].service_config[0].timeout_seconds + tonumber(trimsuffix(google_pubsub_subscription.push[ep].retry_policy[0].maximum_backoff, "s")) > tonumber(trimsuffix(google_cloudfunctions2_function.function[ep].service_config[0].environment_variables["STATE_TTL"], "s"))])}."
  }

  # --- Environment and secrets ----------------------------------------------

  assert {
    condition     = alltrue(flatten([for f in google_cloudfunctions2_function.function : [for k in keys(f.service_config[0].environment_variables) : !contains(var.secret_env_names, k) && !startswith(k, "DSN_")]]))
    error_message = "A credential is a plain environment variable: ${jsonencode({ for ep, f in google_cloudfunctions2_function.function : ep => [for k in keys(f.service_config[0].environment_variables) : k if contains(var.secret_env_names, k) || startswith(k, "DSN_")] })}."
  }

  assert {
    condition     = { for ep, f in google_cloudfunctions2_function.function : ep => { for s in f.service_config[0].secret_environment_variables : s.key => s.secret } } == var.function_secrets
    error_message = "Secrets mounted: ${jsonencode({ for ep, f in google_cloudfunctions2_function.function : ep => { for s in f.service_config[0].secret_environment_variables : s.key => s.secret } })}."
  }

  assert {
    condition = alltrue(flatten([for f in google_cloudfunctions2_function.function : [for s in f.service_config[0].secret_environment_variables :
      s.project_id == "test-project" && s.version == (
        s.key == "REDIS_PASSWORD" ? google_secret_manager_secret_version.redis_auth.version :
        s.key == "REDIS_CA_CERT" ? google_secret_manager_secret_version.redis_ca.version : "latest"
      )
    ]]))
    error_message = "The Redis AUTH string and CA are read at the version Terraform wrote, the other secrets at latest."
  }

  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.function :
      f.service_config[0].environment_variables["REDIS_ADDR"] == "10.9.0.4:6378" &&
      f.service_config[0].environment_variables["REDIS_TLS"] == "true" &&
      f.service_config[0].environment_variables["STATE_TTL"] == "600s" &&
      f.service_config[0].environment_variables["TRACE_EXPORTER"] == "gcp" &&
      f.service_config[0].environment_variables["GOOGLE_CLOUD_PROJECT"] == "test-project" &&
      f.service_config[0].environment_variables["PUBSUB_NAME_PREFIX"] == "" &&
      f.service_config[0].environment_variables["DB_MAX_CONNS"] == "2"
    ])
    error_message = "Every function reaches Memorystore's TLS port, keeps the 10-minute hash TTL and exports traces to Cloud Trace."
  }

  assert {
    condition = { for k in ["DRAIN_FOR", "TRIGGER_QUEUE", "MAX_IN_FLIGHT", "THROTTLE_QUEUE", "THROTTLE_DELAY", "REDIS_MEMORY_HIGH_WATER", "COMPLETED_EXCHANGE", "PART_ROWS", "MAX_PARTS"] : k => lookup(google_cloudfunctions2_function.function["DrainTriggers"].service_config[0].environment_variables, k, null) } == {
      DRAIN_FOR               = "50s"
      TRIGGER_QUEUE           = "report.trigger"
      MAX_IN_FLIGHT           = "10"
      THROTTLE_QUEUE          = "report.trigger.throttled"
      THROTTLE_DELAY          = "5s"
      REDIS_MEMORY_HIGH_WATER = "0.7"
      COMPLETED_EXCHANGE      = "report.completed"
      PART_ROWS               = "250000"
      MAX_PARTS               = "64"
    }
    error_message = "DrainTriggers' environment: ${jsonencode(google_cloudfunctions2_function.function["DrainTriggers"].service_config[0].environment_variables)}."
  }

  assert {
    condition = (
      google_cloudfunctions2_function.function["Sweep"].service_config[0].environment_variables["SWEEP_PENDING_AFTER"] == "15m" &&
      google_cloudfunctions2_function.function["Sweep"].service_config[0].environment_variables["SWEEP_PROCESSING_AFTER"] == "2h" &&
      google_cloudfunctions2_function.function["Sweep"].service_config[0].environment_variables["TRIGGER_QUEUE"] == "report.trigger"
    )
    error_message = "Sweep's environment: ${jsonencode(google_cloudfunctions2_function.function["Sweep"].service_config[0].environment_variables)}."
  }

  assert {
    condition = (
      google_cloudfunctions2_function.function["Aggregate"].service_config[0].environment_variables["REPORT_BUCKET"] == google_storage_bucket.reports.name &&
      google_cloudfunctions2_function.function["DeadLetter"].service_config[0].environment_variables["REPORT_BUCKET"] == google_storage_bucket.reports.name &&
      google_cloudfunctions2_function.function["Aggregate"].service_config[0].environment_variables["CLAIM_TTL"] == "${google_cloudfunctions2_function.function["Aggregate"].service_config[0].timeout_seconds}s"
    )
    error_message = "Aggregate writes to the report bucket (DeadLetter deletes segments there) and its claims expire with its timeout."
  }

  assert {
    condition     = sort([for ep, f in google_cloudfunctions2_function.function : ep if lookup(f.service_config[0].environment_variables, "MAX_REPORT_ROWS", null) == "0"]) == sort(concat(["Aggregate"], keys(var.topology.listeners)))
    error_message = "MAX_REPORT_ROWS (0, no limit) is set on the listeners and Aggregate only."
  }

  assert {
    condition     = sort([for ep, f in google_cloudfunctions2_function.function : ep if anytrue([for k in keys(f.service_config[0].environment_variables) : contains(["PART_ROWS", "MAX_PARTS"], k)])]) == tolist(["DrainTriggers"])
    error_message = "PART_ROWS and MAX_PARTS are set on DrainTriggers (the only config that reads them) only."
  }

  assert {
    condition     = alltrue([for f in google_cloudfunctions2_function.function : !contains(keys(f.service_config[0].environment_variables), "SIGNED_URL_TTL")])
    error_message = "No function signs URLs unless signed_url_ttl_seconds is set."
  }

  # --- Pub/Sub --------------------------------------------------------------

  assert {
    condition     = sort([for t in google_pubsub_topic.topic : t.name]) == sort(concat(var.topology.stage_topics, ["report-aggregate", "report-completed", "report-dead-letter", "report-parked"])) && length(var.topology.stage_topics) >= 1
    error_message = "Topics: ${jsonencode(sort([for t in google_pubsub_topic.topic : t.name]))}."
  }

  assert {
    condition     = { for ep, s in google_pubsub_subscription.push : ep => [s.name, s.topic] } == { for ep, p in var.push_functions : ep => [p.subscription, google_pubsub_topic.topic[p.topic].id] }
    error_message = "Push subscriptions (name, topic): ${jsonencode({ for ep, s in google_pubsub_subscription.push : ep => [s.name, s.topic] })}."
  }

  assert {
    condition = alltrue([for ep, s in google_pubsub_subscription.push :
      s.push_config[0].push_endpoint == google_cloudfunctions2_function.function[ep].service_config[0].uri &&
      s.push_config[0].oidc_token[0].audience == google_cloudfunctions2_function.function[ep].service_config[0].uri &&
      s.push_config[0].oidc_token[0].service_account_email == "${var.push_functions[ep].identity}@test-project.iam.gserviceaccount.com"
    ])
    error_message = "Push subscriptions whose endpoint, OIDC audience or identity is not their own function's: ${jsonencode([for ep, s in google_pubsub_subscription.push : ep if !(s.push_config[0].push_endpoint == google_cloudfunctions2_function.function[ep].service_config[0].uri && s.push_config[0].oidc_token[0].audience == google_cloudfunctions2_function.function[ep].service_config[0].uri && s.push_config[0].oidc_token[0].service_account_email == "${var.push_functions[ep].identity}@test-project.iam.gserviceaccount.com")])}."
  }

  assert {
    condition     = alltrue([for ep, s in google_pubsub_subscription.push : ep == "DeadLetter" || try(s.dead_letter_policy[0].dead_letter_topic == google_pubsub_topic.topic["report-dead-letter"].id, false)])
    error_message = "Push subscriptions that do not dead-letter to report-dead-letter: ${jsonencode([for ep, s in google_pubsub_subscription.push : ep if ep != "DeadLetter" && !try(s.dead_letter_policy[0].dead_letter_topic == google_pubsub_topic.topic["report-dead-letter"].id, false)])}."
  }

  assert {
    condition     = alltrue([for ep, s in google_pubsub_subscription.push : ep == "DeadLetter" || try(s.dead_letter_policy[0].max_delivery_attempts == 6, false)])
    error_message = "Push subscriptions that do not dead-letter after 6 deliveries: ${jsonencode([for ep, s in google_pubsub_subscription.push : ep if ep != "DeadLetter" && !try(s.dead_letter_policy[0].max_delivery_attempts == 6, false)])}."
  }

  assert {
    condition     = alltrue([for ep, s in google_pubsub_subscription.push : ep == "DeadLetter" || try(s.retry_policy[0].minimum_backoff == "60s" && s.retry_policy[0].maximum_backoff == "60s", false)])
    error_message = "Push subscriptions without the 60 s retry backoff: ${jsonencode([for ep, s in google_pubsub_subscription.push : ep if ep != "DeadLetter" && !try(s.retry_policy[0].minimum_backoff == "60s" && s.retry_policy[0].maximum_backoff == "60s", false)])}."
  }

  # DeadLetter's own subscription: retries with backoff for longer,
  # then parks what it cannot handle.
  assert {
    condition = try(
      google_pubsub_subscription.push["DeadLetter"].dead_letter_policy[0].dead_letter_topic == google_pubsub_topic.topic["report-parked"].id &&
      google_pubsub_subscription.push["DeadLetter"].dead_letter_policy[0].max_delivery_attempts == 20 &&
      google_pubsub_subscription.push["DeadLetter"].retry_policy[0].minimum_backoff == "10s" &&
      google_pubsub_subscription.push["DeadLetter"].retry_policy[0].maximum_backoff == "600s",
    false)
    error_message = "The dead-letter subscription retries 20 times with backoff 10-600 s and parks on report-parked."
  }

  assert {
    condition     = alltrue([for ep, s in google_pubsub_subscription.push : s.ack_deadline_seconds >= google_cloudfunctions2_function.function[ep].service_config[0].timeout_seconds && s.ack_deadline_seconds <= 600])
    error_message = "Push subscriptions whose ack deadline is below their function's timeout (or above 600 s): ${jsonencode([for ep, s in google_pubsub_subscription.push : ep if !(s.ack_deadline_seconds >= google_cloudfunctions2_function.function[ep].service_config[0].timeout_seconds && s.ack_deadline_seconds <= 600)])}."
  }

  # 6 deliveries, each waiting up to the ack deadline, 60 s apart.
  assert {
    condition     = alltrue([for s in google_pubsub_subscription.push : tonumber(trimsuffix(s.message_retention_duration, "s")) >= 6 * (600 + 60)])
    error_message = "Push subscriptions keep messages for less than their retries need: ${jsonencode([for ep, s in google_pubsub_subscription.push : ep if tonumber(trimsuffix(s.message_retention_duration, "s")) < 6 * (600 + 60)])}."
  }

  assert {
    condition     = alltrue([for s in concat(values(google_pubsub_subscription.push), values(google_pubsub_subscription.pull)) : s.expiration_policy[0].ttl == ""])
    error_message = "Subscriptions that expire when idle: ${jsonencode([for s in concat(values(google_pubsub_subscription.push), values(google_pubsub_subscription.pull)) : s.name if try(s.expiration_policy[0].ttl, "x") != ""])}."
  }

  assert {
    condition = (
      google_pubsub_subscription.pull["report-parked-hold"].topic == google_pubsub_topic.topic["report-parked"].id &&
      google_pubsub_subscription.pull["report-parked-hold"].message_retention_duration == "2678400s" &&
      length(google_pubsub_subscription.pull["report-parked-hold"].dead_letter_policy) == 0 &&
      google_pubsub_subscription.pull["report-completed-amqp"].topic == google_pubsub_topic.topic["report-completed"].id &&
      length(google_pubsub_subscription.pull["report-completed-amqp"].push_config) == 0 &&
      google_pubsub_subscription.pull["report-completed-amqp"].message_retention_duration == "604800s"
    )
    error_message = "report-parked-hold holds parked messages 31 days; report-completed-amqp is a pull subscription on report-completed."
  }

  # --- IAM: each identity's exact grants -------------------------------------

  assert {
    condition     = sort(keys(output.iam_grants)) == sort(keys({ for m in distinct(concat(keys(var.expected_grants), keys(var.expected_topology_grants))) : m => concat(lookup(var.expected_grants, m, []), lookup(var.expected_topology_grants, m, [])) }))
    error_message = "Identities holding grants: ${jsonencode(sort(keys(output.iam_grants)))}."
  }

  assert {
    condition     = length({ for m, g in output.iam_grants : m => g if g != sort(lookup({ for m in distinct(concat(keys(var.expected_grants), keys(var.expected_topology_grants))) : m => concat(lookup(var.expected_grants, m, []), lookup(var.expected_topology_grants, m, [])) }, m, [])) }) == 0
    error_message = "Identities whose grants differ from the expected: ${jsonencode({ for m, g in output.iam_grants : m => g if g != sort(lookup({ for m in distinct(concat(keys(var.expected_grants), keys(var.expected_topology_grants))) : m => concat(lookup(var.expected_grants, m, []), lookup(var.expected_topology_grants, m, [])) }, m, [])) })}."
  }

  assert {
    condition     = length([for m in keys(output.iam_grants) : m if strcontains(m, "allUsers") || strcontains(m, "allAuthenticatedUsers")]) == 0
    error_message = "A grant names allUsers or allAuthenticatedUsers."
  }

  # Dead-lettering works only if Pub/Sub's service agent may publish to the
  # dead-letter topic and acknowledge on the source subscription.
  assert {
    condition     = length([for t in distinct([for s in google_pubsub_subscription.push : s.dead_letter_policy[0].dead_letter_topic]) : t if !contains(lookup(output.iam_grants, "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com", []), "roles/pubsub.publisher on topic ${split("/", t)[3]}")]) == 0
    error_message = "The Pub/Sub service agent cannot publish to the dead-letter topic(s): ${jsonencode([for t in distinct([for s in google_pubsub_subscription.push : s.dead_letter_policy[0].dead_letter_topic]) : split("/", t)[3] if !contains(lookup(output.iam_grants, "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com", []), "roles/pubsub.publisher on topic ${split("/", t)[3]}")])}."
  }

  assert {
    condition     = length([for s in google_pubsub_subscription.push : s.name if !contains(lookup(output.iam_grants, "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com", []), "roles/pubsub.subscriber on subscription ${s.name}")]) == 0
    error_message = "The Pub/Sub service agent cannot acknowledge dead-lettered messages on: ${jsonencode([for s in google_pubsub_subscription.push : s.name if !contains(lookup(output.iam_grants, "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com", []), "roles/pubsub.subscriber on subscription ${s.name}")])}."
  }

  assert {
    condition     = time_sleep.iam_propagation.create_duration == "60s" && time_sleep.invoker_propagation.create_duration == "60s" && time_sleep.agent_propagation.create_duration == "60s" && time_sleep.pubsub_agent.create_duration == "60s"
    error_message = "The first apply waits 60 s for IAM propagation before builds, pushes and the Pub/Sub agent's grants."
  }

  # --- Buckets ----------------------------------------------------------------

  assert {
    condition     = alltrue([for b in [google_storage_bucket.reports, google_storage_bucket.source] : b.uniform_bucket_level_access && b.public_access_prevention == "enforced"])
    error_message = "Buckets without uniform access or enforced public access prevention: ${jsonencode([for b in [google_storage_bucket.reports, google_storage_bucket.source] : b.name if !(b.uniform_bucket_level_access && b.public_access_prevention == "enforced")])}."
  }

  assert {
    condition = (
      length(google_storage_bucket.reports.lifecycle_rule) == 2 &&
      try(one(google_storage_bucket.reports.lifecycle_rule[0].action).type == "Delete" && one(google_storage_bucket.reports.lifecycle_rule[0].condition).age == 30 && try(length(one(google_storage_bucket.reports.lifecycle_rule[0].condition).matches_prefix), 0) == 0, false) &&
      try(one(google_storage_bucket.reports.lifecycle_rule[1].action).type == "Delete" && one(google_storage_bucket.reports.lifecycle_rule[1].condition).age == 1 && one(google_storage_bucket.reports.lifecycle_rule[1].condition).matches_prefix == tolist(["tmp/"]), false) &&
      google_storage_bucket.reports.soft_delete_policy[0].retention_duration_seconds == 7 * 86400 &&
      google_storage_bucket.reports.versioning[0].enabled == false
    )
    error_message = "The report bucket deletes reports after 30 days, keeps deleted ones 7 days in soft delete, and no old generations; part segments (tmp/) a crash left are deleted after 1 day, by a rule of their own."
  }

  # The live source archive is never deleted by the bucket's own rule: only
  # noncurrent generations are.
  assert {
    condition = (
      google_storage_bucket.source.versioning[0].enabled &&
      alltrue([for r in google_storage_bucket.source.lifecycle_rule : one(r.condition).with_state == "ARCHIVED" && one(r.condition).age == null])
    )
    error_message = "The source bucket's delete rule can match the live archive."
  }

  # --- Redis and its secrets --------------------------------------------------

  assert {
    condition     = google_redis_instance.state.auth_enabled
    error_message = "Memorystore needs AUTH (auth_enabled)."
  }

  assert {
    condition     = google_redis_instance.state.transit_encryption_mode == "SERVER_AUTHENTICATION"
    error_message = "Memorystore needs TLS (transit_encryption_mode SERVER_AUTHENTICATION), not ${jsonencode(google_redis_instance.state.transit_encryption_mode)}."
  }

  assert {
    condition     = try(google_redis_instance.state.redis_configs["maxmemory-policy"], "") == "noeviction"
    error_message = "Memorystore needs maxmemory-policy noeviction (the default volatile-lru evicts live report hashes), not ${jsonencode(try(google_redis_instance.state.redis_configs["maxmemory-policy"], ""))}."
  }

  assert {
    condition     = google_redis_instance.state.tier == "STANDARD_HA" && google_redis_instance.state.redis_version == "REDIS_7_2" && google_redis_instance.state.authorized_network == var.network
    error_message = "Memorystore: STANDARD_HA, REDIS_7_2, on the functions' network."
  }

  assert {
    condition = nonsensitive(
      google_secret_manager_secret_version.redis_auth.secret_data == google_redis_instance.state.auth_string &&
      google_secret_manager_secret_version.redis_ca.secret_data == join("\n", google_redis_instance.state.server_ca_certs[*].cert)
    )
    error_message = "The Redis secrets hold the instance's own AUTH string and every CA it serves (two during a rotation), so a new instance makes new versions."
  }

  assert {
    condition     = google_secret_manager_secret_version.redis_auth.deletion_policy == "DISABLE" && google_secret_manager_secret_version.redis_ca.deletion_policy == "DISABLE"
    error_message = "Replaced Redis secret versions are disabled, not destroyed."
  }

  # --- Scheduler jobs ---------------------------------------------------------

  assert {
    condition = { for ep, j in google_cloud_scheduler_job.scheduled : ep => [j.schedule, j.attempt_deadline, j.retry_config[0].retry_count, j.http_target[0].http_method] } == {
      DrainTriggers = ["* * * * *", "120s", 0, "POST"]
      Sweep         = ["*/5 * * * *", "240s", 0, "POST"]
    }
    error_message = "Scheduler jobs: ${jsonencode({ for ep, j in google_cloud_scheduler_job.scheduled : ep => [j.schedule, j.attempt_deadline] })}."
  }

  assert {
    condition = alltrue([for ep, j in google_cloud_scheduler_job.scheduled :
      j.http_target[0].uri == google_cloudfunctions2_function.function[ep].service_config[0].uri &&
      j.http_target[0].oidc_token[0].audience == google_cloudfunctions2_function.function[ep].service_config[0].uri &&
      j.http_target[0].oidc_token[0].service_account_email == { DrainTriggers = "fanout-drain-sched@test-project.iam.gserviceaccount.com", Sweep = "fanout-sweep-sched@test-project.iam.gserviceaccount.com" }[ep]
    ])
    error_message = "Each scheduler job calls its function with an OIDC token of its own identity."
  }

  # --- Network: egress per function -----------------------------------------

  assert {
    # Each source database of topology.json: its listeners, and DrainTriggers
    # where it splits reports by it.
    condition = jsonencode({ for k, r in google_compute_firewall.egress_allow : k => [r.project, r.network, r.direction, sort(r.target_tags), sort(r.destination_ranges), one(r.allow).ports] }) == jsonencode(merge(
      { for db, d in var.topology.source_databases : "db-${replace(db, "_", "-")}" => ["test-project", var.network, "EGRESS", sort(concat([for ep in d.listeners : "fanout-${var.topology.listeners[ep].slug}"], contains(keys(var.topology.split_databases), db) ? ["fanout-drain"] : [])), var.database_cidrs[db], ["3306"]] },
      {
        google-apis = ["test-project", var.network, "EGRESS", sort(concat(["fanout-aggregate", "fanout-dead-letter", "fanout-drain", "fanout-sweep"], [for l in var.topology.listeners : "fanout-${l.slug}"])), ["199.36.153.8/30"], ["443"]]
        redis       = ["test-project", var.network, "EGRESS", sort(concat(["fanout-aggregate", "fanout-dead-letter", "fanout-drain", "fanout-sweep"], [for l in var.topology.listeners : "fanout-${l.slug}"])), ["10.9.0.4/32"], ["6378"]]
        amqp        = ["test-project", var.network, "EGRESS", ["fanout-drain", "fanout-sweep"], ["10.20.0.5/32"], ["5671"]]
        "db-record" = ["test-project", var.network, "EGRESS", ["fanout-aggregate", "fanout-dead-letter", "fanout-drain", "fanout-sweep"], ["10.20.0.0/28"], ["3306"]]
      },
    ))
    error_message = "Egress rules: ${jsonencode({ for k, r in google_compute_firewall.egress_allow : k => [sort(r.target_tags), sort(r.destination_ranges), one(r.allow).ports] })}."
  }

  # All traffic goes through the VPC, and everything the allows above do
  # not name is denied, the internet included, by a rule evaluated before
  # any allow rule the network already has (those sit at 1000 by default)
  # and after this module's allows.
  assert {
    condition = (
      google_compute_firewall.egress_deny[0].priority > max([for r in google_compute_firewall.egress_allow : r.priority]...) &&
      google_compute_firewall.egress_deny[0].priority < 1000 &&
      sort(google_compute_firewall.egress_deny[0].target_tags) == sort(values(output.function_network_tags)) &&
      google_compute_firewall.egress_deny[0].destination_ranges == toset(["0.0.0.0/0"]) &&
      one(google_compute_firewall.egress_deny[0].deny).protocol == "all"
    )
    error_message = "Every destination but the allowed ones is denied to every function, right after the allow rules and before the network's own (priority ${google_compute_firewall.egress_deny[0].priority}, ranges ${jsonencode(google_compute_firewall.egress_deny[0].destination_ranges)})."
  }

  assert {
    condition     = length(google_compute_subnetwork_iam_member.grant) == 0
    error_message = "No Shared VPC grant when the network is in the project."
  }

  # --- APIs -------------------------------------------------------------------

  assert {
    condition     = contains(keys(google_project_service.this), "cloudtrace.googleapis.com") && length(setintersection(keys(google_project_service.this), ["iamcredentials.googleapis.com", "sqladmin.googleapis.com", "dns.googleapis.com"])) == 0 && alltrue([for s in google_project_service.this : !s.disable_on_destroy])
    error_message = "Cloud Trace is enabled; the IAM Credentials, Cloud SQL Admin and DNS APIs only with the options that use them; no API is disabled on destroy."
  }

  # --- External secrets, destroy guards, labels, outputs ----------------------

  # Checked when planning, by their metadata only: never the value.
  assert {
    condition = (
      { for k, d in data.google_secret_manager_secret_version.external : k => d.secret } == { amqp-url = "fanout-amqp-url", dsn-plt-fund = "fanout-dsn-plt-fund", dsn-plt-user = "fanout-dsn-plt-user", dsn-record = "fanout-record-dsn" } &&
      alltrue([for d in data.google_secret_manager_secret_version.external : d.fetch_secret_data == false && d.version == "latest"])
    )
    error_message = "Every external secret's latest version is looked up at plan time without its value: ${jsonencode({ for k, d in data.google_secret_manager_secret_version.external : k => [d.secret, d.fetch_secret_data] })}."
  }

  assert {
    condition     = google_redis_instance.state.deletion_policy == "PREVENT"
    error_message = "Memorystore, which holds every report in flight, cannot be deleted or replaced by default."
  }

  assert {
    condition = alltrue(concat(
      [for r in google_cloudfunctions2_function.function : r.labels == var.labels],
      [for r in google_pubsub_topic.topic : r.labels == var.labels],
      [for r in concat(values(google_pubsub_subscription.push), values(google_pubsub_subscription.pull)) : r.labels == var.labels],
      [for r in [google_storage_bucket.reports, google_storage_bucket.source, google_redis_instance.state, google_secret_manager_secret.redis_auth, google_secret_manager_secret.redis_ca, google_artifact_registry_repository.functions] : r.labels == var.labels],
      [for r in [google_monitoring_alert_policy.dead_letters, google_monitoring_alert_policy.throttled, google_monitoring_alert_policy.oldest_unacked, google_monitoring_alert_policy.redis_memory, google_monitoring_alert_policy.function_errors] : r.user_labels == var.labels],
    ))
    error_message = "Every resource that takes labels carries the labels input."
  }

  assert {
    condition = (
      output.build_service_account == "fanout-build@test-project.iam.gserviceaccount.com" &&
      output.push_service_accounts == { for ep, p in var.push_functions : ep => "${p.identity}@test-project.iam.gserviceaccount.com" } &&
      output.scheduler_service_accounts == { DrainTriggers = "fanout-drain-sched@test-project.iam.gserviceaccount.com", Sweep = "fanout-sweep-sched@test-project.iam.gserviceaccount.com" } &&
      output.function_names == merge({ for ep, l in var.topology.listeners : ep => "fanout-${l.subscription}" }, { Aggregate = "fanout-aggregate", DeadLetter = "fanout-dead-letter", DrainTriggers = "fanout-drain-triggers", Sweep = "fanout-sweep" })
    )
    error_message = "Outputs: build ${output.build_service_account}, push ${jsonencode(output.push_service_accounts)}, scheduler ${jsonencode(output.scheduler_service_accounts)}, functions ${jsonencode(output.function_names)}."
  }

  # --- Monitoring -------------------------------------------------------------

  assert {
    condition = (
      alltrue([for s in google_pubsub_subscription.push : strcontains(google_monitoring_alert_policy.dead_letters.conditions[0].condition_threshold[0].filter, s.name)]) &&
      google_monitoring_alert_policy.dead_letters.conditions[0].condition_threshold[0].aggregations[0].group_by_fields == tolist(["resource.label.subscription_id"]) &&
      strcontains(google_monitoring_alert_policy.dead_letters.conditions[1].condition_threshold[0].filter, "report-parked-hold")
    )
    error_message = "Dead letters alert per push subscription (every one in the filter, grouped by subscription), and parked messages alert."
  }

  assert {
    condition     = strcontains(google_monitoring_alert_policy.throttled.conditions[0].condition_threshold[0].filter, "metric.label.response_code = \"429\"") && google_monitoring_alert_policy.throttled.conditions[0].condition_threshold[0].threshold_value == 0
    error_message = "Any 429 (saturation) alerts."
  }

  assert {
    condition = (
      google_logging_metric.report_outcomes.label_extractors["status"] == "EXTRACT(jsonPayload.status)" &&
      google_logging_metric.report_duration.value_extractor == "EXTRACT(jsonPayload.durationSeconds)" &&
      google_logging_metric.report_duration.metric_descriptor[0].value_type == "DISTRIBUTION" &&
      strcontains(google_logging_metric.report_outcomes.filter, "jsonPayload.message=\"report final\"")
    )
    error_message = "The report metrics count final records by status and measure their duration."
  }

  assert {
    condition = length([for t in jsondecode(google_monitoring_dashboard.reports.dashboard_json).mosaicLayout.tiles : t
      if strcontains(t.widget.xyChart.dataSets[0].timeSeriesQuery.timeSeriesFilter.filter, "logging.googleapis.com/user/fanout/report_")
    ]) == 3
    error_message = "The dashboard charts report outcomes and durations."
  }
}
