# The functions reach Memorystore, the MySQL servers and RabbitMQ through
# Direct VPC egress (no Serverless VPC Access connector), in the caller's
# VPC and subnet (a Shared VPC host's included) or, with create_network, in
# a VPC created here. Egress is denied except where each function needs it:
# every function Redis (and, with all-traffic egress, Google APIs at
# private.googleapis.com); a listener its own database; DrainTriggers and the
# sweeper the record database and RabbitMQ, DrainTriggers also the source
# databases it estimates parts from; the aggregator and the DLQ
# function the record database. With the default VPC_EGRESS_ALL_TRAFFIC
# the deny covers every destination, the internet included; with
# VPC_EGRESS_PRIVATE_RANGES_ONLY only private ones pass through the VPC, so
# only they can be denied. The deny sits just below this module's allows
# and above the network's usual rules (var.firewall_priority).
#
# Destroying: Cloud Run keeps a subnet's Direct VPC addresses for 1-2 hours
# after the functions that used them are deleted, so `terraform destroy`
# fails on a subnet created here until they are released. Run destroy again
# later (README.md, "Destroying").

locals {
  network_id    = var.create_network ? google_compute_network.vpc[0].id : var.network
  subnetwork_id = var.create_network ? google_compute_subnetwork.functions[0].id : var.subnetwork

  # Firewall rules live in the network's project: the host project of a
  # Shared VPC ("projects/HOST/global/networks/NAME").
  network_project = var.create_network ? var.project_id : split("/", var.network)[1]
  shared_vpc      = local.network_project != var.project_id

  # Cloud Run takes addresses from the subnet in blocks of 16 and holds
  # about two per instance in steady state (Google's Direct VPC egress
  # guide), so each function needs ceil(2 x max instances / 16) blocks. A
  # subnet loses 4 addresses to Google. A subnet created here must hold
  # them all (its precondition); a caller's subnet is shared with other
  # workloads, so the number is an output (subnet_addresses_needed).
  subnet_addresses_needed = sum([for f in values(local.functions) : ceil(2 * f.max_instances / 16) * 16])

  # What VPC_EGRESS_PRIVATE_RANGES_ONLY sends through the VPC: RFC 1918
  # and RFC 6598 (shared address space, used by some networks' services).
  private_ranges = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]

  all_traffic = var.vpc_egress == "VPC_EGRESS_ALL_TRAFFIC"

  # With all-traffic egress Google APIs go through the VPC too: to
  # private.googleapis.com (Private Google Access), which a network created
  # here resolves *.googleapis.com to (the zone at the end of this file).
  google_apis_zone = var.create_network && local.all_traffic
  google_apis_host = var.google_apis_cidr == "199.36.153.4/30" ? "restricted.googleapis.com." : "private.googleapis.com."

  # A database on Cloud SQL is reached through the connector's port only.
  database_ports = { for db in local.databases : db => contains(keys(var.cloud_sql_instances), db) ? 3307 : var.database_port }

  # Allowed egress, keyed by destination: which functions (by network tag),
  # where, which port. Redis is every function's; a database only its
  # readers'; RabbitMQ only the functions that set amqp.
  egress_rules = merge(
    local.all_traffic ? {
      google-apis = {
        description = "Every function: Google APIs (Pub/Sub, Cloud Storage, Cloud Trace, IAM Credentials, Cloud SQL Admin) at private.googleapis.com."
        tags        = [for ep in sort(keys(local.functions)) : local.function_tags[ep]]
        ranges      = [var.google_apis_cidr]
        port        = 443
      }
    } : {},
    {
      redis = {
        description = "Every function: Memorystore over TLS with AUTH."
        tags        = [for ep in sort(keys(local.functions)) : local.function_tags[ep]]
        ranges      = ["${google_redis_instance.state.host}/32"]
        port        = google_redis_instance.state.port
      }
      amqp = {
        description = "DrainTriggers and the sweeper: RabbitMQ (report.trigger and its delay queues, report.completed)."
        tags        = [for ep in sort(keys(local.functions)) : local.function_tags[ep] if local.functions[ep].amqp]
        ranges      = [var.amqp_host_cidr]
        port        = var.amqp_port
      }
    },
    {
      for db in sort(keys(var.database_cidrs)) : "db-${replace(db, "_", "-")}" => {
        description = "Only the functions that read ${db}."
        tags        = [for ep in sort(keys(local.functions)) : local.function_tags[ep] if contains(keys(local.function_databases[ep]), db)]
        ranges      = var.database_cidrs[db]
        port        = local.database_ports[db]
      }
    },
  )
}

resource "google_compute_network" "vpc" {
  count = var.create_network ? 1 : 0

  project                 = var.project_id
  name                    = "${var.name}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.this]
}

resource "google_compute_subnetwork" "functions" {
  count = var.create_network ? 1 : 0

  project       = var.project_id
  name          = "${var.name}-functions"
  region        = var.region
  network       = google_compute_network.vpc[0].id
  ip_cidr_range = var.subnet_cidr

  # Lets VPC_EGRESS_ALL_TRAFFIC functions reach Google APIs without NAT.
  private_ip_google_access = true

  lifecycle {
    precondition {
      condition     = pow(2, 32 - tonumber(split("/", var.subnet_cidr)[1])) - 4 >= local.subnet_addresses_needed
      error_message = "subnet_cidr ${var.subnet_cidr} has ${pow(2, 32 - tonumber(split("/", var.subnet_cidr)[1])) - 4} usable addresses; the functions at their max_instance_count need ${local.subnet_addresses_needed} (blocks of 16, two addresses per instance). Use a larger subnet or lower the max instances."
    }
  }
}

# With Direct VPC egress on a Shared VPC subnet, the Cloud Run service agent
# of this project uses the host project's subnet (Google's "Direct VPC
# egress with a Shared VPC network"). The deployer needs to set IAM on the
# host's subnet; grant_shared_vpc_access = false leaves that to the host's
# administrators.
#
# The agent exists only once the Cloud Run API is enabled in this project,
# and IAM may not know it at once: the grant waits for the API and then
# time_sleep.run_agent, or it fails with "service account does not exist"
# on a fresh service project.
resource "google_compute_subnetwork_iam_member" "grant" {
  for_each = local.subnetwork_grants

  project    = each.value.project
  region     = each.value.region
  subnetwork = each.value.subnetwork
  role       = each.value.role
  member     = each.value.member

  depends_on = [time_sleep.run_agent]
}

resource "time_sleep" "run_agent" {
  count = length(local.subnetwork_grants) > 0 ? 1 : 0

  create_duration = "${var.iam_propagation_seconds}s"

  triggers = {
    run_api = google_project_service.this["run.googleapis.com"].id
  }
}

resource "google_compute_firewall" "egress_allow" {
  for_each = var.manage_firewall ? local.egress_rules : {}

  project            = local.network_project
  name               = "${var.name}-fn-to-${each.key}"
  description        = each.value.description
  network            = local.network_id
  direction          = "EGRESS"
  priority           = var.firewall_priority
  target_tags        = each.value.tags
  destination_ranges = each.value.ranges

  allow {
    protocol = "tcp"
    ports    = [tostring(each.value.port)]
  }

  depends_on = [google_project_service.this]
}

# Everything else is out of bounds for the functions: every destination
# with all-traffic egress, the private ranges otherwise. Evaluated right
# after the allows above and before the network's own rules, so an allow
# rule the network already has (a Shared VPC's "allow all egress" at 1000)
# does not open it again.
resource "google_compute_firewall" "egress_deny" {
  count = var.manage_firewall ? 1 : 0

  project            = local.network_project
  name               = "${var.name}-fn-deny-egress"
  description        = "The functions may reach only the destinations allowed above."
  network            = local.network_id
  direction          = "EGRESS"
  priority           = var.firewall_priority + 1
  target_tags        = [for ep in sort(keys(local.functions)) : local.function_tags[ep]]
  destination_ranges = local.all_traffic ? ["0.0.0.0/0"] : local.private_ranges

  deny {
    protocol = "all"
  }

  depends_on = [google_project_service.this]
}

# Private Google Access for a network created here: *.googleapis.com
# resolves to private.googleapis.com, which the google-apis egress rule
# allows and the subnet reaches without NAT (private_ip_google_access).
resource "google_dns_managed_zone" "googleapis" {
  count = local.google_apis_zone ? 1 : 0

  project     = var.project_id
  name        = "${var.name}-googleapis"
  dns_name    = "googleapis.com."
  description = "Google APIs through private.googleapis.com for the functions' all-traffic egress."
  visibility  = "private"
  labels      = local.labels

  private_visibility_config {
    networks {
      network_url = google_compute_network.vpc[0].id
    }
  }

  depends_on = [google_project_service.this]
}

resource "google_dns_record_set" "googleapis" {
  for_each = local.google_apis_zone ? {
    (local.google_apis_host) = { type = "A", rrdatas = [for i in range(4) : cidrhost(var.google_apis_cidr, i)] }
    "*.googleapis.com."      = { type = "CNAME", rrdatas = [local.google_apis_host] }
  } : {}

  project      = var.project_id
  managed_zone = google_dns_managed_zone.googleapis[0].name
  name         = each.key
  type         = each.value.type
  ttl          = 300
  rrdatas      = each.value.rrdatas
}
