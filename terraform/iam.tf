# Every IAM grant the module makes, in one place: one map per kind of
# resource granted on, and one resource per kind. Each identity holds only
# what its function needs (README.md, "IAM bindings"); the tests assert
# each identity's exact set of grants. No grant is authoritative, none
# names allUsers or allAuthenticatedUsers.
#
# Identities: each function runs as its own service account (in its
# function_*.tf), each push subscription and each scheduler job calls its
# function as another one of its own, and builds run as ${name}-build.

# Cloud Build builds the functions as this account instead of the default
# Compute Engine service account (which often holds Editor).
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name}-build"
  display_name = "fanout export: builds the functions"

  depends_on = [google_project_service.this]
}

locals {
  function_member = { for ep, f in local.functions : ep => "serviceAccount:${f.service_account.email}" }

  # The functions that make records final sign download URLs with their
  # own identity when signing is on.
  signers = local.sign_urls ? [for ep in sort(keys(local.functions)) : ep if local.functions[ep].announces] : []

  project_grants = merge(
    # What Google documents for a custom build service account of gen2
    # functions: Cloud Run Builder on the project (source, images, logs).
    {
      "build/run.builder" = {
        project   = var.project_id
        role      = "roles/run.builder"
        member    = "serviceAccount:${google_service_account.build.email}"
        condition = null
      }
    },
    # Spans to Cloud Trace (TRACE_EXPORTER=gcp); the role exists only on
    # projects.
    {
      for ep in sort(keys(local.functions)) : "${ep}/cloudtrace.agent" => {
        project   = var.project_id
        role      = "roles/cloudtrace.agent"
        member    = local.function_member[ep]
        condition = null
      }
    },
    # Optional: functions whose DSN dials a Cloud SQL instance through the
    # Cloud SQL Go connector may connect to that instance only, in the
    # instance's own project.
    {
      for ep in sort(keys(local.functions)) : "${ep}/cloudsql.client" => {
        project = split(":", var.cloud_sql_instances[local.functions[ep].database])[0]
        role    = "roles/cloudsql.client"
        member  = local.function_member[ep]
        condition = {
          title      = "only the ${local.functions[ep].database} instance"
          expression = "resource.name == \"projects/${split(":", var.cloud_sql_instances[local.functions[ep].database])[0]}/instances/${split(":", var.cloud_sql_instances[local.functions[ep].database])[2]}\""
        }
      } if contains(keys(var.cloud_sql_instances), local.functions[ep].database)
    },
  )

  topic_grants = merge(
    # A function publishes exactly where its entry says.
    merge([
      for ep, f in local.functions : {
        for topic in f.publishes : "${ep}/${topic}" => {
          topic  = topic
          role   = "roles/pubsub.publisher"
          member = local.function_member[ep]
        }
      }
    ]...),
    # Pub/Sub forwards undeliverable messages as its service agent: it must
    # publish to each dead-letter topic (report-dead-letter for the
    # function subscriptions, report-parked for the DLQ function's own).
    {
      for topic in distinct([for p in values(local.push_subscriptions) : p.delivery.dead_letter_topic]) :
      "pubsub-agent/${topic}" => {
        topic  = topic
        role   = "roles/pubsub.publisher"
        member = local.pubsub_agent
      }
    },
  )

  subscription_grants = merge(
    # Dead-lettering acks the message on the source subscription as the
    # agent.
    {
      for ep, p in local.push_subscriptions : "pubsub-agent/${p.subscription}" => {
        subscription = google_pubsub_subscription.push[ep].name
        role         = "roles/pubsub.subscriber"
        member       = local.pubsub_agent
      }
    },
    # A function consumes exactly the pull subscriptions its entry names.
    merge([
      for ep, f in local.functions : {
        for sub in f.subscribes : "${ep}/${sub}" => {
          subscription = google_pubsub_subscription.pull[sub].name
          role         = "roles/pubsub.subscriber"
          member       = local.function_member[ep]
        }
      }
    ]...),
  )

  # A function reads exactly the secrets it mounts.
  secret_grants = merge([
    for ep, secrets in local.function_secrets : {
      for env, s in secrets : "${ep}/${env}" => {
        secret = s.secret
        role   = "roles/secretmanager.secretAccessor"
        member = local.function_member[ep]
      }
    }
  ]...)

  bucket_grants = merge(
    # Aggregate writes and, on a takeover, overwrites report objects:
    # create and delete on the report bucket only. No other identity may
    # write there.
    {
      "Aggregate/reports" = {
        bucket = google_storage_bucket.reports.name
        role   = "roles/storage.objectUser"
        member = local.function_member["Aggregate"]
      }
    },
    # A signed URL acts with its signer's permissions: the other functions
    # that announce a SUCCESS read the object they link to.
    {
      for ep in local.signers : "${ep}/reports" => {
        bucket = google_storage_bucket.reports.name
        role   = "roles/storage.objectViewer"
        member = local.function_member[ep]
      } if ep != "Aggregate"
    },
  )

  # Each push identity (and each scheduler identity) may invoke its own
  # function and nothing else.
  invoker_grants = merge(
    {
      for ep, p in local.push_subscriptions : "${ep}/push" => {
        function = ep
        member   = "serviceAccount:${p.identity.email}"
      }
    },
    {
      for ep, s in local.scheduled_functions : "${ep}/scheduler" => {
        function = ep
        member   = "serviceAccount:${s.identity.email}"
      }
    },
  )

  service_account_grants = merge(
    # Pub/Sub's service agent mints the OIDC token of each push identity
    # (needed in projects created before 2021-04-08; harmless after).
    {
      for ep, p in local.push_subscriptions : "${ep}/push-token" => {
        service_account = p.identity.name
        member          = local.pubsub_agent
      }
    },
    # Signing V4 URLs without a key file: a signer may create tokens (sign
    # blobs) for itself only.
    {
      for ep in local.signers : "${ep}/sign-urls" => {
        service_account = local.functions[ep].service_account.name
        member          = local.function_member[ep]
      }
    },
  )

  # Direct VPC egress on a Shared VPC subnet: this project's Cloud Run
  # service agent uses the host's subnet.
  subnetwork_grants = local.shared_vpc && var.grant_shared_vpc_access ? {
    "cloud-run-agent/network-user" = {
      project    = split("/", var.subnetwork)[1]
      region     = split("/", var.subnetwork)[3]
      subnetwork = split("/", var.subnetwork)[5]
      role       = "roles/compute.networkUser"
      member     = "serviceAccount:service-${data.google_project.this.number}@serverless-robot-prod.iam.gserviceaccount.com"
    }
  } : {}
}

resource "google_project_iam_member" "grant" {
  for_each = local.project_grants

  project = each.value.project
  role    = each.value.role
  member  = each.value.member

  dynamic "condition" {
    for_each = each.value.condition == null ? [] : [each.value.condition]

    content {
      title      = condition.value.title
      expression = condition.value.expression
    }
  }
}

resource "google_pubsub_topic_iam_member" "grant" {
  for_each = local.topic_grants

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value.topic].name
  role    = each.value.role
  member  = each.value.member

  depends_on = [time_sleep.pubsub_agent]
}

resource "google_pubsub_subscription_iam_member" "grant" {
  for_each = local.subscription_grants

  project      = var.project_id
  subscription = each.value.subscription
  role         = each.value.role
  member       = each.value.member

  depends_on = [time_sleep.pubsub_agent]
}

resource "google_secret_manager_secret_iam_member" "grant" {
  for_each = local.secret_grants

  project   = var.project_id
  secret_id = each.value.secret
  role      = each.value.role
  member    = each.value.member

  depends_on = [google_project_service.this]
}

resource "google_storage_bucket_iam_member" "grant" {
  for_each = local.bucket_grants

  bucket = each.value.bucket
  role   = each.value.role
  member = each.value.member
}

resource "google_cloud_run_v2_service_iam_member" "grant" {
  for_each = local.invoker_grants

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.value.function].name
  role     = "roles/run.invoker"
  member   = each.value.member
}

resource "google_service_account_iam_member" "grant" {
  for_each = local.service_account_grants

  service_account_id = each.value.service_account
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value.member

  depends_on = [time_sleep.pubsub_agent]
}

# IAM changes take up to a few minutes to reach every Google service. A
# build that starts before its identity's grant arrives fails, and so does a
# function whose first instance reads a secret it may not read yet (the
# provider's own gen2 example waits 60 s). The functions wait for this,
# which waits for every grant they use at build and start; a new grant (a
# new function, a new secret) waits again.
resource "time_sleep" "iam_propagation" {
  create_duration = "${var.iam_propagation_seconds}s"

  triggers = {
    grants = join(",", concat(
      [for k in sort(keys(local.project_grants)) : "project:${k}"],
      [for k in sort(keys(local.topic_grants)) : "topic:${k}"],
      [for k in sort(keys(local.secret_grants)) : "secret:${k}"],
      [for k in sort(keys(local.bucket_grants)) : "bucket:${k}"],
      [for k in sort(keys(local.service_account_grants)) : "service-account:${k}"],
      [for k in sort(keys(local.subnetwork_grants)) : "subnetwork:${k}"],
    ))
  }

  depends_on = [
    google_project_iam_member.grant,
    google_pubsub_topic_iam_member.grant,
    google_secret_manager_secret_iam_member.grant,
    google_storage_bucket_iam_member.grant,
    google_service_account_iam_member.grant,
    google_compute_subnetwork_iam_member.grant,
  ]
}

# The same before the first push and the first scheduled call: a 403 from a
# function whose invoker grant has not arrived would spend a delivery.
resource "time_sleep" "invoker_propagation" {
  create_duration = "${var.iam_propagation_seconds}s"

  triggers = {
    grants = join(",", sort(keys(local.invoker_grants)))
  }

  depends_on = [google_cloud_run_v2_service_iam_member.grant]
}
