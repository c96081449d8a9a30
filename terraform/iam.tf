# Every IAM grant the module makes, in one place: one map per kind of
# resource granted on, and one resource per kind. Each identity holds only
# what its function needs (README.md, "IAM bindings"); the tests assert
# each identity's exact set of grants. No grant is authoritative, none
# names allUsers or allAuthenticatedUsers.
#
# Identities: each function runs as its own service account (in its
# function_*.tf), each push subscription and each scheduler job calls its
# function as another one of its own, and builds run as ${name}-build.
# Grants to Google's service agents (Pub/Sub's, Cloud Run's) are separate
# resources (…_iam_member.agent) so that only what needs them waits for
# the agents to exist.

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
  build_member    = "serviceAccount:${google_service_account.build.email}"

  # The functions that make records final sign download URLs with their
  # own identity when signing is on.
  signers = local.sign_urls ? [for ep in sort(keys(local.functions)) : ep if local.functions[ep].announces] : []

  # Databases on Cloud SQL: the instance's project and name (a
  # domain-scoped project, example.com:p, keeps its colon).
  cloud_sql = {
    for db, c in var.cloud_sql_instances : db => {
      connection_name = c.connection_name
      project         = join(":", slice(split(":", c.connection_name), 0, length(split(":", c.connection_name)) - 2))
      instance        = element(split(":", c.connection_name), length(split(":", c.connection_name)) - 1)
      database        = coalesce(c.database, db == "record" ? "plt_report" : db)
    }
  }
  # The functions that read a database on Cloud SQL.
  cloud_sql_readers = [for ep in sort(keys(local.functions)) : ep if contains(keys(local.cloud_sql), local.functions[ep].database)]

  # Each function's access to each Cloud SQL instance it reads, key =>
  # {ep, db}: its own database's under the key ep, and a source database's
  # (DrainTriggers' split estimates) under "ep/db" unless that instance is
  # already its own database's (one IAM user and one grant per instance).
  cloud_sql_access = merge(
    { for ep in local.cloud_sql_readers : ep => { ep = ep, db = local.functions[ep].database } },
    merge([
      for ep, f in local.functions : {
        for instance, dbs in { for db in sort(keys(f.source_databases)) : local.cloud_sql[db].connection_name => db... if contains(keys(local.cloud_sql), db) } :
        "${ep}/${dbs[0]}" => { ep = ep, db = dbs[0] }
        if try(local.cloud_sql[f.database].connection_name, "") != instance
      }
    ]...),
  )

  project_grants = merge(
    # The build identity writes its build logs; the role exists only on
    # projects. What else a build touches is granted on the resource:
    # the source bucket (bucket_grants) and the image repository
    # (repository_grants).
    {
      "build/logging.logWriter" = {
        project   = var.project_id
        role      = "roles/logging.logWriter"
        member    = local.build_member
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
    # A function whose database is on Cloud SQL connects through the
    # connector (cloudsql.client: the instance's address and an ephemeral
    # certificate) and signs in as itself (cloudsql.instanceUser: IAM
    # database authentication), to that instance only, in its project.
    merge([
      for key, a in local.cloud_sql_access : {
        for role in ["cloudsql.client", "cloudsql.instanceUser"] : "${key}/${role}" => {
          project = local.cloud_sql[a.db].project
          role    = "roles/${role}"
          member  = local.function_member[a.ep]
          condition = {
            title      = "only the ${a.db} instance"
            expression = "resource.name == \"projects/${local.cloud_sql[a.db].project}/instances/${local.cloud_sql[a.db].instance}\""
          }
        }
      }
    ]...),
  )

  # A function publishes exactly where its entry says.
  topic_grants = merge([
    for ep, f in local.functions : {
      for topic in f.publishes : "${ep}/${topic}" => {
        topic  = topic
        role   = "roles/pubsub.publisher"
        member = local.function_member[ep]
      }
    }
  ]...)

  # Pub/Sub forwards undeliverable messages as its service agent: it must
  # publish to each dead-letter topic (report-dead-letter for the function
  # subscriptions, report-parked for DeadLetter's own). Only the push
  # subscriptions need the agent's grants, so only they wait for them.
  agent_topic_grants = {
    for topic in distinct([for p in values(local.push_subscriptions) : p.delivery.dead_letter_topic]) :
    "pubsub-agent/${topic}" => {
      topic  = topic
      role   = "roles/pubsub.publisher"
      member = local.pubsub_agent
    }
  }

  # A function consumes exactly the pull subscriptions its entry names.
  subscription_grants = merge([
    for ep, f in local.functions : {
      for sub in f.subscribes : "${ep}/${sub}" => {
        subscription = google_pubsub_subscription.pull[sub].name
        role         = "roles/pubsub.subscriber"
        member       = local.function_member[ep]
      }
    }
  ]...)

  # Dead-lettering acks the message on the source subscription as the
  # agent.
  agent_subscription_grants = {
    for ep, p in local.push_subscriptions : "pubsub-agent/${p.subscription}" => {
      subscription = google_pubsub_subscription.push[ep].name
      role         = "roles/pubsub.subscriber"
      member       = local.pubsub_agent
    }
  }

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
    # The build reads the source archive, from this bucket only.
    {
      "build/source" = {
        bucket    = google_storage_bucket.source.name
        role      = "roles/storage.objectViewer"
        member    = local.build_member
        condition = null
      }
    },
    # Aggregate writes and, on a takeover, overwrites report objects:
    # create and delete on the report bucket only. No other identity may
    # write there.
    {
      "Aggregate/reports" = {
        bucket    = google_storage_bucket.reports.name
        role      = "roles/storage.objectUser"
        member    = local.function_member["Aggregate"]
        condition = null
      }
    },
    # DeadLetter deletes a failed report's part segments: list and delete
    # under tmp/ only (objectUser would let it write reports too; the
    # condition keeps it to tmp/ objects and listings of that prefix).
    {
      "DeadLetter/reports-tmp" = {
        bucket = google_storage_bucket.reports.name
        role   = "roles/storage.objectUser"
        member = local.function_member["DeadLetter"]
        condition = {
          title      = "only tmp/ (part segments)"
          expression = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.reports.name}/objects/tmp/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"tmp/\")"
        }
      }
    },
    # A signed URL acts with its signer's permissions: the other functions
    # that announce a SUCCESS read the object they link to.
    {
      for ep in local.signers : "${ep}/reports" => {
        bucket    = google_storage_bucket.reports.name
        role      = "roles/storage.objectViewer"
        member    = local.function_member[ep]
        condition = null
      } if ep != "Aggregate"
    },
  )

  # The build pushes the function images (and its layer cache) to this
  # module's repository only.
  repository_grants = {
    "build/functions" = {
      repository = google_artifact_registry_repository.functions.name
      location   = google_artifact_registry_repository.functions.location
      role       = "roles/artifactregistry.writer"
      member     = local.build_member
    }
  }

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

  # Signing V4 URLs without a key file: a signer may sign blobs as itself
  # only (a custom role holding iam.serviceAccounts.signBlob alone, not
  # the whole token creator role).
  service_account_grants = {
    for ep in local.signers : "${ep}/sign-urls" => {
      service_account = local.functions[ep].service_account.name
      role            = google_project_iam_custom_role.url_signer[0].name
      member          = local.function_member[ep]
    }
  }

  # Pub/Sub's service agent mints the OIDC token of each push identity
  # (needed in projects created before 2021-04-08; harmless after).
  agent_service_account_grants = {
    for ep, p in local.push_subscriptions : "${ep}/push-token" => {
      service_account = p.identity.name
      role            = "roles/iam.serviceAccountTokenCreator"
      member          = local.pubsub_agent
    }
  }

  # Direct VPC egress on a Shared VPC subnet: this project's Cloud Run
  # service agent uses the host's subnet.
  subnetwork_grants = local.shared_vpc && var.grant_shared_vpc_access ? {
    "cloud-run-agent/network-user" = {
      project    = split("/", var.subnetwork)[1]
      region     = split("/", var.subnetwork)[3]
      subnetwork = split("/", var.subnetwork)[5]
      role       = "roles/compute.networkUser"
      member     = local.run_agent
    }
  } : {}
}

# Signing a V4 URL needs iam.serviceAccounts.signBlob and nothing else.
# A deleted custom role's ID stays taken for up to 44 days: a new name
# gets a new role.
resource "google_project_iam_custom_role" "url_signer" {
  count = local.sign_urls ? 1 : 0

  project     = var.project_id
  role_id     = "${replace(var.name, "-", "_")}_url_signer"
  title       = "fanout export: signs report download URLs"
  description = "Signs V4 signed URLs as the service account it is granted on (signBlob only)."
  permissions = ["iam.serviceAccounts.signBlob"]

  depends_on = [google_project_service.this]
}

# IAM database users of the functions whose database is on Cloud SQL (IAM
# database authentication: no password). The database's administrator
# grants them their privileges in MySQL (README.md, Cloud SQL).
resource "google_sql_user" "iam" {
  for_each = { for key, a in local.cloud_sql_access : key => merge(local.cloud_sql[a.db], { ep = a.ep }) }

  project  = each.value.project
  instance = each.value.instance
  name     = local.functions[each.value.ep].service_account.email
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"

  depends_on = [google_project_service.this]
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
}

resource "google_pubsub_topic_iam_member" "agent" {
  for_each = local.agent_topic_grants

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
}

resource "google_pubsub_subscription_iam_member" "agent" {
  for_each = local.agent_subscription_grants

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

  dynamic "condition" {
    for_each = each.value.condition == null ? [] : [each.value.condition]

    content {
      title      = condition.value.title
      expression = condition.value.expression
    }
  }
}

resource "google_artifact_registry_repository_iam_member" "grant" {
  for_each = local.repository_grants

  project    = var.project_id
  location   = each.value.location
  repository = each.value.repository
  role       = each.value.role
  member     = each.value.member
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
  role               = each.value.role
  member             = each.value.member
}

resource "google_service_account_iam_member" "agent" {
  for_each = local.agent_service_account_grants

  service_account_id = each.value.service_account
  role               = each.value.role
  member             = each.value.member

  depends_on = [time_sleep.pubsub_agent]
}

# IAM changes take up to a few minutes to reach every Google service. A
# build that starts before its identity's grants arrive fails, and so does a
# function whose first instance reads a secret it may not read yet (the
# provider's own gen2 example waits 60 s). The functions wait for this,
# which waits for every grant they use at build and start, and for none of
# the Pub/Sub service agent's (only the push subscriptions need those); a
# new grant (a new function, a new secret) waits again.
resource "time_sleep" "iam_propagation" {
  create_duration = "${var.iam_propagation_seconds}s"

  triggers = {
    grants = join(",", concat(
      [for k in sort(keys(local.project_grants)) : "project:${k}"],
      [for k in sort(keys(local.topic_grants)) : "topic:${k}"],
      [for k in sort(keys(local.subscription_grants)) : "subscription:${k}"],
      [for k in sort(keys(local.secret_grants)) : "secret:${k}"],
      [for k in sort(keys(local.bucket_grants)) : "bucket:${k}"],
      [for k in sort(keys(local.repository_grants)) : "repository:${k}"],
      [for k in sort(keys(local.service_account_grants)) : "service-account:${k}"],
      [for k in sort(keys(local.subnetwork_grants)) : "subnetwork:${k}"],
    ))
  }

  depends_on = [
    google_project_iam_member.grant,
    google_pubsub_topic_iam_member.grant,
    google_pubsub_subscription_iam_member.grant,
    google_secret_manager_secret_iam_member.grant,
    google_storage_bucket_iam_member.grant,
    google_artifact_registry_repository_iam_member.grant,
    google_service_account_iam_member.grant,
    google_compute_subnetwork_iam_member.grant,
    google_sql_user.iam,
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

# And for the Pub/Sub service agent's grants, which only the push
# subscriptions need: a push whose OIDC token the agent may not mint yet
# would spend a delivery, a dead letter it may not publish yet would be
# lost. Nothing else waits for the agent.
resource "time_sleep" "agent_propagation" {
  create_duration = "${var.iam_propagation_seconds}s"

  triggers = {
    grants = join(",", concat(sort(keys(local.agent_topic_grants)), sort(keys(local.agent_service_account_grants))))
  }

  depends_on = [
    google_pubsub_topic_iam_member.agent,
    google_service_account_iam_member.agent,
  ]
}
