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

  # The listeners (go generate ./shared/topology), which the expectations
  # about them are built from (not a module variable).
  topology = jsondecode(file("topology.json"))
}

run "created_network_signed_urls_cloud_sql" {
  command = plan

  variables {
    create_network         = true
    subnet_cidr            = "10.8.0.0/24"
    signed_url_ttl_seconds = 3600
    cloud_sql_instances = {
      record   = { connection_name = "db-project:europe-west1:reports" }
      plt_fund = { connection_name = "fund-project:europe-west1:funds" }
    }
    record_dsn_secret  = null
    source_dsn_secrets = { plt_user = "fanout-dsn-plt-user" }
    # 2 reports of at most 3 parts in flight: the listeners get 6
    # instances (under their cap of 10), Aggregate its cap of 5.
    max_in_flight           = 2
    max_parts               = 3
    part_rows               = 1000
    aggregate_max_instances = 5
    pubsub_name_prefix      = "prod-"
    redis_version           = "REDIS_6_X"
    max_report_rows         = 500000
  }

  # Topic IDs as Pub/Sub returns them, with the prefix: the dead-letter
  # grants are compared against them.
  override_resource {
    target          = google_pubsub_topic.topic["report-dead-letter"]
    override_during = plan
    values          = { id = "projects/test-project/topics/prod-report-dead-letter" }
  }
  override_resource {
    target          = google_pubsub_topic.topic["report-parked"]
    override_during = plan
    values          = { id = "projects/test-project/topics/prod-report-parked" }
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
    condition     = output.subnet_addresses_needed == 16 * length(jsondecode(file("topology.json")).functions)
    error_message = "Every function of topology.json here has at most 6 instances (parts-sized: max_in_flight 2 x max_parts 3), 16 addresses each: ${16 * length(jsondecode(file("topology.json")).functions)}, not ${output.subnet_addresses_needed}."
  }

  # --- Signed URLs: the announcers sign with their own identity -------------

  # A network created here resolves Google APIs to private.googleapis.com,
  # which the all-traffic egress allows.
  assert {
    condition = (
      google_dns_managed_zone.googleapis[0].dns_name == "googleapis.com." &&
      google_dns_managed_zone.googleapis[0].visibility == "private" &&
      one(one(google_dns_managed_zone.googleapis[0].private_visibility_config).networks).network_url == google_compute_network.vpc[0].id &&
      jsonencode({ for k, r in google_dns_record_set.googleapis : k => [r.type, sort(r.rrdatas)] }) == jsonencode({
        "*.googleapis.com."       = ["CNAME", ["private.googleapis.com."]]
        "private.googleapis.com." = ["A", ["199.36.153.10", "199.36.153.11", "199.36.153.8", "199.36.153.9"]]
      }) &&
      google_compute_firewall.egress_allow["google-apis"].destination_ranges == toset(["199.36.153.8/30"])
    )
    error_message = "create_network with all-traffic egress makes a private googleapis.com zone pointing at private.googleapis.com."
  }

  assert {
    condition     = length(setintersection(keys(google_project_service.this), ["iamcredentials.googleapis.com", "sqladmin.googleapis.com", "dns.googleapis.com"])) == 3
    error_message = "Signing calls the IAM Credentials API, the connector the Cloud SQL Admin API, the zone Cloud DNS: all enabled."
  }

  assert {
    condition     = sort([for ep, f in google_cloudfunctions2_function.function : ep if lookup(f.service_config[0].environment_variables, "SIGNED_URL_TTL", null) == "3600s"]) == sort(["Aggregate", "DeadLetter", "DrainTriggers", "Sweep"])
    error_message = "SIGNED_URL_TTL is set on exactly the functions that announce completion."
  }

  assert {
    condition = sort(output.iam_grants["serviceAccount:fanout-drain@test-project.iam.gserviceaccount.com"]) == sort([
      "roles/cloudsql.client on project db-project if resource.name == \"projects/db-project/instances/reports\"",
      "roles/cloudsql.instanceUser on project db-project if resource.name == \"projects/db-project/instances/reports\"",
      # plt_fund, for the split estimates, on its own instance.
      "roles/cloudsql.client on project fund-project if resource.name == \"projects/fund-project/instances/funds\"",
      "roles/cloudsql.instanceUser on project fund-project if resource.name == \"projects/fund-project/instances/funds\"",
      "roles/cloudtrace.agent on project test-project",
      "projects/test-project/roles/fanout_url_signer on service account projects/test-project/serviceAccounts/fanout-drain@test-project.iam.gserviceaccount.com",
      "roles/pubsub.publisher on topic prod-report-completed",
      "roles/pubsub.publisher on topic prod-report-parked",
      "roles/pubsub.publisher on topic prod-report-stage-1",
      "roles/pubsub.subscriber on subscription prod-report-completed-amqp",
      "roles/secretmanager.secretAccessor on secret fanout-amqp-url",
      "roles/secretmanager.secretAccessor on secret fanout-redis-auth",
      "roles/secretmanager.secretAccessor on secret fanout-redis-ca",
      "roles/storage.objectViewer on bucket test-project-fanout-reports",
    ])
    error_message = "DrainTriggers' grants: ${jsonencode(output.iam_grants["serviceAccount:fanout-drain@test-project.iam.gserviceaccount.com"])}."
  }

  assert {
    condition = sort(output.iam_grants["serviceAccount:fanout-aggregate@test-project.iam.gserviceaccount.com"]) == sort(concat([
      "roles/cloudsql.client on project db-project if resource.name == \"projects/db-project/instances/reports\"",
      "roles/cloudsql.instanceUser on project db-project if resource.name == \"projects/db-project/instances/reports\"",
      "roles/cloudtrace.agent on project test-project",
      "projects/test-project/roles/fanout_url_signer on service account projects/test-project/serviceAccounts/fanout-aggregate@test-project.iam.gserviceaccount.com",
      "roles/pubsub.publisher on topic prod-report-completed",
      "roles/pubsub.publisher on topic prod-report-parked",
      "roles/secretmanager.secretAccessor on secret fanout-redis-auth",
      "roles/secretmanager.secretAccessor on secret fanout-redis-ca",
      "roles/storage.objectUser on bucket test-project-fanout-reports",
      ],
      # The stage topics after the first (report-stage-2, ...).
      [for t in slice(var.topology.stage_topics, 1, length(var.topology.stage_topics)) : "roles/pubsub.publisher on topic prod-${t}"],
    ))
    error_message = "Aggregate's grants: ${jsonencode(output.iam_grants["serviceAccount:fanout-aggregate@test-project.iam.gserviceaccount.com"])}."
  }

  # Every signer (and only a signer) may sign blobs, as itself only, with
  # a role that holds signBlob alone, and read the reports it links to.
  assert {
    condition = jsonencode({
      for m, g in output.iam_grants : m => [for x in g : x if strcontains(x, "on service account") || (strcontains(x, "on bucket test-project-fanout-reports") && !strcontains(x, "/objects/tmp/"))]
      if !strcontains(m, "gcp-sa-pubsub")
      }) == jsonencode({
      for m, g in output.iam_grants : m => (
        contains(["fanout-drain", "fanout-aggregate", "fanout-dead-letter", "fanout-sweep"], split("@", trimprefix(m, "serviceAccount:"))[0]) ? sort(concat(
          ["projects/test-project/roles/fanout_url_signer on service account projects/test-project/serviceAccounts/${trimprefix(m, "serviceAccount:")}"],
          [m == "serviceAccount:fanout-aggregate@test-project.iam.gserviceaccount.com" ? "roles/storage.objectUser on bucket test-project-fanout-reports" : "roles/storage.objectViewer on bucket test-project-fanout-reports"],
        )) : []
      ) if !strcontains(m, "gcp-sa-pubsub")
    }) && google_project_iam_custom_role.url_signer[0].permissions == toset(["iam.serviceAccounts.signBlob"])
    error_message = "Signing and report reading: ${jsonencode({ for m, g in output.iam_grants : m => [for x in g : x if strcontains(x, "on service account") || strcontains(x, "on bucket")] })}."
  }

  # Dead letters go to the prefixed topics, and the agent may publish there.
  assert {
    condition = alltrue([for s in google_pubsub_subscription.push :
      contains(output.iam_grants["serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"], "roles/pubsub.publisher on topic ${split("/", s.dead_letter_policy[0].dead_letter_topic)[3]}") &&
      startswith(split("/", s.dead_letter_policy[0].dead_letter_topic)[3], "prod-report-")
    ])
    error_message = "The Pub/Sub agent's publisher grants miss a prefixed dead-letter topic."
  }

  # --- Cloud SQL: in the instance's project, for its readers only -----------

  assert {
    condition = jsonencode({
      for role in ["roles/cloudsql.client", "roles/cloudsql.instanceUser"] : role => sort([for k, g in google_project_iam_member.grant : trimprefix(g.member, "serviceAccount:") if g.role == role && g.project == "db-project" && length(g.condition) == 1])
      }) == jsonencode({
      for role in ["roles/cloudsql.client", "roles/cloudsql.instanceUser"] : role => [
        "fanout-aggregate@test-project.iam.gserviceaccount.com",
        "fanout-dead-letter@test-project.iam.gserviceaccount.com",
        "fanout-drain@test-project.iam.gserviceaccount.com",
        "fanout-sweep@test-project.iam.gserviceaccount.com",
      ]
    })
    error_message = "roles/cloudsql.client and roles/cloudsql.instanceUser go to the record database's readers only, in the instance's project, limited to the instance."
  }

  # plt_fund on its own instance: its listeners and DrainTriggers (split
  # estimates) get the grants, limited to that instance.
  assert {
    condition = jsonencode({
      for role in ["roles/cloudsql.client", "roles/cloudsql.instanceUser"] : role => sort([for k, g in google_project_iam_member.grant : trimprefix(g.member, "serviceAccount:") if g.role == role && g.project == "fund-project" && try(one(g.condition).expression, "") == "resource.name == \"projects/fund-project/instances/funds\""])
      }) == jsonencode({
      for role in ["roles/cloudsql.client", "roles/cloudsql.instanceUser"] : role => sort(concat(
        ["fanout-drain@test-project.iam.gserviceaccount.com"],
        [for ep in var.topology.source_databases.plt_fund.listeners : "fanout-${var.topology.listeners[ep].slug}@test-project.iam.gserviceaccount.com"],
      ))
    })
    error_message = "plt_fund's Cloud SQL grants: ${jsonencode([for k, g in google_project_iam_member.grant : k if g.project == "fund-project"])}."
  }

  # Their IAM database users, and a DSN with no password that names the
  # instance: no record secret is mounted, checked or granted.
  assert {
    condition = (
      { for ep, u in google_sql_user.iam : ep => [u.project, u.instance, u.name, u.type] } == merge(
        { for ep in ["Aggregate", "DeadLetter", "DrainTriggers", "Sweep"] : ep => ["db-project", "reports", google_cloudfunctions2_function.function[ep].service_config[0].service_account_email, "CLOUD_IAM_SERVICE_ACCOUNT"] },
        { for key, ep in merge({ for ep in var.topology.source_databases.plt_fund.listeners : ep => ep }, { "DrainTriggers/plt_fund" = "DrainTriggers" }) : key => ["fund-project", "funds", google_cloudfunctions2_function.function[ep].service_config[0].service_account_email, "CLOUD_IAM_SERVICE_ACCOUNT"] },
      ) &&
      { for ep, f in google_cloudfunctions2_function.function : ep => lookup(f.service_config[0].environment_variables, "DSN_PLT_FUND", null) if contains(keys(f.service_config[0].environment_variables), "DSN_PLT_FUND") } == merge(
        { for ep in var.topology.source_databases.plt_fund.listeners : ep => "fanout-${var.topology.listeners[ep].slug}@cloudsql(fund-project:europe-west1:funds)/plt_fund" },
        { DrainTriggers = "fanout-drain@cloudsql(fund-project:europe-west1:funds)/plt_fund" },
      ) &&
      alltrue([for f in google_cloudfunctions2_function.function : !contains([for s in f.service_config[0].secret_environment_variables : s.key], "DSN_PLT_FUND")]) &&
      { for ep, f in google_cloudfunctions2_function.function : ep => lookup(f.service_config[0].environment_variables, "RECORD_DSN", null) if contains(keys(f.service_config[0].environment_variables), "RECORD_DSN") } == {
        Aggregate     = "fanout-aggregate@cloudsql(db-project:europe-west1:reports)/plt_report"
        DeadLetter    = "fanout-dead-letter@cloudsql(db-project:europe-west1:reports)/plt_report"
        DrainTriggers = "fanout-drain@cloudsql(db-project:europe-west1:reports)/plt_report"
        Sweep         = "fanout-sweep@cloudsql(db-project:europe-west1:reports)/plt_report"
      } &&
      alltrue([for f in google_cloudfunctions2_function.function : !contains([for s in f.service_config[0].secret_environment_variables : s.key], "RECORD_DSN")]) &&
      !contains(keys(data.google_secret_manager_secret_version.external), "dsn-record")
    )
    error_message = "Cloud SQL users and DSNs: ${jsonencode({ for ep, u in google_sql_user.iam : ep => u.name })}."
  }

  # Only the connector's port is opened to the Cloud SQL database; the
  # listeners' plain databases keep theirs.
  assert {
    condition     = jsonencode({ for k, r in google_compute_firewall.egress_allow : k => one(r.allow).ports if startswith(k, "db-") }) == jsonencode({ "db-plt-fund" = ["3307"], "db-plt-user" = ["3306"], "db-record" = ["3307"] })
    error_message = "Database ports: ${jsonencode({ for k, r in google_compute_firewall.egress_allow : k => one(r.allow).ports })}."
  }

  # --- Parts: sizing and PART_ROWS / MAX_PARTS --------------------------------

  assert {
    condition = (
      { for ep, f in google_cloudfunctions2_function.function : ep => f.service_config[0].max_instance_count } == merge({ for ep in keys(var.topology.listeners) : ep => 6 }, { Aggregate = 5, DeadLetter = 2, DrainTriggers = 1, Sweep = 1 }) &&
      google_cloudfunctions2_function.function["DrainTriggers"].service_config[0].environment_variables["PART_ROWS"] == "1000" &&
      google_cloudfunctions2_function.function["DrainTriggers"].service_config[0].environment_variables["MAX_PARTS"] == "3"
    )
    error_message = "Listeners get max_in_flight x max_parts (6) instances under their cap, Aggregate its cap (5); PART_ROWS and MAX_PARTS reach DrainTriggers: ${jsonencode({ for ep, f in google_cloudfunctions2_function.function : ep => f.service_config[0].max_instance_count })}."
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
    condition     = sort([for ep, f in google_cloudfunctions2_function.function : ep if lookup(f.service_config[0].environment_variables, "MAX_REPORT_ROWS", null) == "500000"]) == sort(concat(["Aggregate"], keys(var.topology.listeners)))
    error_message = "max_report_rows reaches the listeners and Aggregate."
  }

  assert {
    condition     = google_redis_instance.state.redis_version == "REDIS_6_X" && google_redis_instance.state.connect_mode == "DIRECT_PEERING" && google_redis_instance.state.reserved_ip_range == "10.9.0.0/29"
    error_message = "REDIS_6_X is accepted, peered directly through the reserved range."
  }
}

# A Shared VPC, with the other egress mode: only private ranges go
# through the VPC, and only they are denied.
run "shared_vpc_private_ranges" {
  command = plan

  variables {
    network                 = "projects/host-project/global/networks/shared"
    subnetwork              = "projects/host-project/regions/europe-west1/subnetworks/fanout"
    redis_connect_mode      = "PRIVATE_SERVICE_ACCESS"
    redis_reserved_ip_range = null
    vpc_egress              = "VPC_EGRESS_PRIVATE_RANGES_ONLY"
    # Given, the project is not read at plan time (before any API is on).
    project_number = "987654321098"
  }

  assert {
    condition = (
      length(data.google_project.this) == 0 &&
      contains(keys(output.iam_grants), "serviceAccount:service-987654321098@gcp-sa-pubsub.iam.gserviceaccount.com") &&
      contains(keys(output.iam_grants), "serviceAccount:service-987654321098@serverless-robot-prod.iam.gserviceaccount.com")
    )
    error_message = "With project_number the project is not read, and the service agents are named from it: ${jsonencode(keys(output.iam_grants))}."
  }

  assert {
    condition = (
      alltrue([for f in google_cloudfunctions2_function.function : f.service_config[0].direct_vpc_egress == "VPC_EGRESS_PRIVATE_RANGES_ONLY"]) &&
      google_compute_firewall.egress_deny[0].destination_ranges == toset(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]) &&
      google_compute_firewall.egress_deny[0].priority > max([for r in google_compute_firewall.egress_allow : r.priority]...) &&
      google_compute_firewall.egress_deny[0].priority < 1000 &&
      !contains(keys(google_compute_firewall.egress_allow), "google-apis")
    )
    error_message = "Private-ranges egress denies every private range (100.64.0.0/10 included) but the allowed ones, above the network's rules; Google APIs are reached directly: ${jsonencode(google_compute_firewall.egress_deny[0].destination_ranges)}."
  }

  # The grant to the Cloud Run agent waits for the agent (the order is
  # local/tfcheck's TestFirstApplyOrder; the wait is here).
  assert {
    condition     = length(time_sleep.run_agent) == 1 && time_sleep.run_agent[0].create_duration == "60s"
    error_message = "The Shared VPC grant waits 60 s after the Cloud Run API for its service agent."
  }

  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.function :
      f.service_config[0].direct_vpc_network_interface[0].network == "projects/host-project/global/networks/shared" &&
      f.service_config[0].direct_vpc_network_interface[0].subnetwork == "projects/host-project/regions/europe-west1/subnetworks/fanout"
    ])
    error_message = "The functions egress through the host project's subnet."
  }

  assert {
    condition     = alltrue([for r in concat(values(google_compute_firewall.egress_allow), google_compute_firewall.egress_deny) : r.project == "host-project" && r.network == "projects/host-project/global/networks/shared"])
    error_message = "The firewall rules belong to the host project's network."
  }

  assert {
    condition = output.iam_grants["serviceAccount:service-987654321098@serverless-robot-prod.iam.gserviceaccount.com"] == tolist([
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
