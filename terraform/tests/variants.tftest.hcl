# The module's options, one plan each: a network created here with signed
# URLs, Cloud SQL and a name prefix; and a Shared VPC. Each run asserts what
# the options change; defaults.tftest.hcl covers the rest.

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

run "created_network_signed_urls_cloud_sql" {
  command = plan

  variables {
    create_network         = true
    subnet_cidr            = "10.8.0.0/24"
    signed_url_ttl_seconds = 86400
    cloud_sql_instances = {
      record = "db-project:europe-west1:reports"
    }
    pubsub_name_prefix = "prod-"
    redis_version      = "REDIS_6_X"
    max_report_rows    = 500000
  }

  # --- The network is created and used --------------------------------------

  assert {
    condition = (
      google_compute_subnetwork.functions[0].ip_cidr_range == "10.8.0.0/24" &&
      google_compute_subnetwork.functions[0].private_ip_google_access &&
      google_compute_network.vpc[0].auto_create_subnetworks == false
    )
    error_message = "create_network makes a VPC and a subnet with Private Google Access."
  }

  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.function :
      f.service_config[0].direct_vpc_network_interface[0].network == google_compute_network.vpc[0].id &&
      f.service_config[0].direct_vpc_network_interface[0].subnetwork == google_compute_subnetwork.functions[0].id
    ])
    error_message = "The functions egress through the network created here."
  }

  assert {
    condition     = alltrue([for r in google_compute_firewall.egress_allow : r.project == "test-project" && r.network == google_compute_network.vpc[0].id])
    error_message = "The firewall rules are in the created network."
  }

  assert {
    condition     = output.subnet_addresses_needed == 176
    error_message = "3 listeners and Aggregate at 10 instances need 32 addresses each, the other three 16: 176, not ${output.subnet_addresses_needed}."
  }

  # --- Signed URLs: the announcers sign with their own identity -------------

  assert {
    condition     = contains(keys(google_project_service.this), "iamcredentials.googleapis.com")
    error_message = "Signing calls the IAM Credentials API: it is enabled with signed URLs."
  }

  assert {
    condition     = sort([for ep, f in google_cloudfunctions2_function.function : ep if lookup(f.service_config[0].environment_variables, "SIGNED_URL_TTL", null) == "86400s"]) == sort(["Aggregate", "DeadLetter", "DrainTriggers", "Sweep"])
    error_message = "SIGNED_URL_TTL is set on exactly the functions that announce completion."
  }

  assert {
    condition = sort(output.iam_grants["serviceAccount:fanout-drain@test-project.iam.gserviceaccount.com"]) == sort([
      "roles/cloudsql.client on project db-project if resource.name == \"projects/db-project/instances/reports\"",
      "roles/cloudtrace.agent on project test-project",
      "roles/iam.serviceAccountTokenCreator on service account projects/test-project/serviceAccounts/fanout-drain@test-project.iam.gserviceaccount.com",
      "roles/pubsub.publisher on topic prod-report-completed",
      "roles/pubsub.publisher on topic prod-report-parked",
      "roles/pubsub.publisher on topic prod-report-stage-1",
      "roles/pubsub.subscriber on subscription prod-report-completed-amqp",
      "roles/secretmanager.secretAccessor on secret fanout-amqp-url",
      "roles/secretmanager.secretAccessor on secret fanout-record-dsn",
      "roles/secretmanager.secretAccessor on secret fanout-redis-auth",
      "roles/secretmanager.secretAccessor on secret fanout-redis-ca",
      "roles/storage.objectViewer on bucket test-project-fanout-reports",
    ])
    error_message = "DrainTriggers' grants: ${jsonencode(output.iam_grants["serviceAccount:fanout-drain@test-project.iam.gserviceaccount.com"])}."
  }

  assert {
    condition = sort(output.iam_grants["serviceAccount:fanout-aggregate@test-project.iam.gserviceaccount.com"]) == sort([
      "roles/cloudsql.client on project db-project if resource.name == \"projects/db-project/instances/reports\"",
      "roles/cloudtrace.agent on project test-project",
      "roles/iam.serviceAccountTokenCreator on service account projects/test-project/serviceAccounts/fanout-aggregate@test-project.iam.gserviceaccount.com",
      "roles/pubsub.publisher on topic prod-report-completed",
      "roles/pubsub.publisher on topic prod-report-parked",
      "roles/pubsub.publisher on topic prod-report-stage-2",
      "roles/secretmanager.secretAccessor on secret fanout-record-dsn",
      "roles/secretmanager.secretAccessor on secret fanout-redis-auth",
      "roles/secretmanager.secretAccessor on secret fanout-redis-ca",
      "roles/storage.objectUser on bucket test-project-fanout-reports",
    ])
    error_message = "Aggregate's grants: ${jsonencode(output.iam_grants["serviceAccount:fanout-aggregate@test-project.iam.gserviceaccount.com"])}."
  }

  # Every signer (and only a signer) may create tokens, for itself only, and
  # read the reports it links to.
  assert {
    condition = jsonencode({
      for m, g in output.iam_grants : m => [for x in g : x if strcontains(x, "serviceAccountTokenCreator") || strcontains(x, "on bucket")]
      if !strcontains(m, "gcp-sa-pubsub")
      }) == jsonencode({
      for m, g in output.iam_grants : m => (
        contains(["fanout-drain", "fanout-aggregate", "fanout-dead-letter", "fanout-sweep"], split("@", trimprefix(m, "serviceAccount:"))[0]) ? sort(concat(
          ["roles/iam.serviceAccountTokenCreator on service account projects/test-project/serviceAccounts/${trimprefix(m, "serviceAccount:")}"],
          [m == "serviceAccount:fanout-aggregate@test-project.iam.gserviceaccount.com" ? "roles/storage.objectUser on bucket test-project-fanout-reports" : "roles/storage.objectViewer on bucket test-project-fanout-reports"],
        )) : []
      ) if !strcontains(m, "gcp-sa-pubsub")
    })
    error_message = "Token creation and report reading: ${jsonencode({ for m, g in output.iam_grants : m => [for x in g : x if strcontains(x, "serviceAccountTokenCreator") || strcontains(x, "on bucket")] })}."
  }

  # --- Cloud SQL: in the instance's project, for its readers only -----------

  assert {
    condition = sort([for k, g in google_project_iam_member.grant : trimprefix(g.member, "serviceAccount:") if g.role == "roles/cloudsql.client" && g.project == "db-project" && length(g.condition) == 1]) == sort([
      "fanout-aggregate@test-project.iam.gserviceaccount.com",
      "fanout-dead-letter@test-project.iam.gserviceaccount.com",
      "fanout-drain@test-project.iam.gserviceaccount.com",
      "fanout-sweep@test-project.iam.gserviceaccount.com",
    ])
    error_message = "roles/cloudsql.client goes to the record database's readers, in the instance's project, limited to the instance."
  }

  # --- Name prefix, limits, Redis version ------------------------------------

  assert {
    condition = (
      alltrue([for t in google_pubsub_topic.topic : startswith(t.name, "prod-report-")]) &&
      alltrue([for s in concat(values(google_pubsub_subscription.push), values(google_pubsub_subscription.pull)) : startswith(s.name, "prod-")]) &&
      alltrue([for f in google_cloudfunctions2_function.function : f.service_config[0].environment_variables["PUBSUB_NAME_PREFIX"] == "prod-"])
    )
    error_message = "pubsub_name_prefix prefixes every topic and subscription and reaches the functions."
  }

  assert {
    condition     = sort([for ep, f in google_cloudfunctions2_function.function : ep if lookup(f.service_config[0].environment_variables, "MAX_REPORT_ROWS", null) == "500000"]) == sort(["Aggregate", "ListenPayment", "ListenUserTagRelation", "ListenWithdraw"])
    error_message = "max_report_rows reaches the listeners and Aggregate."
  }

  assert {
    condition     = google_redis_instance.state.redis_version == "REDIS_6_X" && google_redis_instance.state.connect_mode == "DIRECT_PEERING" && google_redis_instance.state.reserved_ip_range == "10.9.0.0/29"
    error_message = "REDIS_6_X is accepted, peered directly through the reserved range."
  }
}

run "shared_vpc" {
  command = plan

  variables {
    network                 = "projects/host-project/global/networks/shared"
    subnetwork              = "projects/host-project/regions/europe-west1/subnetworks/fanout"
    redis_connect_mode      = "PRIVATE_SERVICE_ACCESS"
    redis_reserved_ip_range = null
  }

  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.function :
      f.service_config[0].direct_vpc_network_interface[0].network == "projects/host-project/global/networks/shared" &&
      f.service_config[0].direct_vpc_network_interface[0].subnetwork == "projects/host-project/regions/europe-west1/subnetworks/fanout"
    ])
    error_message = "The functions egress through the host project's subnet."
  }

  assert {
    condition     = alltrue([for r in concat(values(google_compute_firewall.egress_allow), google_compute_firewall.egress_deny_private) : r.project == "host-project" && r.network == "projects/host-project/global/networks/shared"])
    error_message = "The firewall rules belong to the host project's network."
  }

  assert {
    condition = output.iam_grants["serviceAccount:service-123456789012@serverless-robot-prod.iam.gserviceaccount.com"] == tolist([
      "roles/compute.networkUser on subnetwork fanout",
    ]) && one(values(google_compute_subnetwork_iam_member.grant)).project == "host-project" && one(values(google_compute_subnetwork_iam_member.grant)).region == "europe-west1"
    error_message = "This project's Cloud Run service agent may use the host's subnet, and nothing else."
  }

  assert {
    condition     = google_redis_instance.state.connect_mode == "PRIVATE_SERVICE_ACCESS" && google_redis_instance.state.authorized_network == "projects/host-project/global/networks/shared"
    error_message = "Memorystore joins the Shared VPC through private services access."
  }

  assert {
    condition     = length(google_compute_network.vpc) == 0
    error_message = "No network is created in the service project."
  }
}
