# The functions reach Memorystore, the MySQL servers and RabbitMQ through
# Direct VPC egress (no Serverless VPC Access connector), in the caller's
# VPC and subnet (a Shared VPC host's included) or, with create_network, in
# a VPC created here. Egress to private ranges is denied except where each
# function needs it: every function Redis; a listener its own database; the
# shim and the sweeper the record database and RabbitMQ; the aggregator and
# the DLQ function the record database.
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

  private_ranges = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]

  # Allowed egress, keyed by destination: which functions (by network tag),
  # where, which port. Redis is every function's; a database only its
  # readers'; RabbitMQ only the functions that set amqp.
  egress_rules = merge(
    {
      redis = {
        description = "Every function: Memorystore over TLS with AUTH."
        tags        = [for ep in sort(keys(local.functions)) : local.function_tags[ep]]
        ranges      = ["${google_redis_instance.state.host}/32"]
        port        = google_redis_instance.state.port
      }
      amqp = {
        description = "The shim and the sweeper: RabbitMQ (report.trigger and its delay queues, report.completed)."
        tags        = [for ep in sort(keys(local.functions)) : local.function_tags[ep] if local.functions[ep].amqp]
        ranges      = [var.amqp_host_cidr]
        port        = var.amqp_port
      }
    },
    {
      for db in sort(keys(var.database_cidrs)) : "db-${replace(db, "_", "-")}" => {
        description = "Only the functions that read ${db}."
        tags        = [for ep in sort(keys(local.functions)) : local.function_tags[ep] if local.functions[ep].database == db]
        ranges      = var.database_cidrs[db]
        port        = var.database_port
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
resource "google_compute_subnetwork_iam_member" "grant" {
  for_each = local.subnetwork_grants

  project    = each.value.project
  region     = each.value.region
  subnetwork = each.value.subnetwork
  role       = each.value.role
  member     = each.value.member
}

resource "google_compute_firewall" "egress_allow" {
  for_each = var.manage_firewall ? local.egress_rules : {}

  project            = local.network_project
  name               = "${var.name}-fn-to-${each.key}"
  description        = each.value.description
  network            = local.network_id
  direction          = "EGRESS"
  priority           = 1000
  target_tags        = each.value.tags
  destination_ranges = each.value.ranges

  allow {
    protocol = "tcp"
    ports    = [tostring(each.value.port)]
  }

  depends_on = [google_project_service.this]
}

# Everything else private is out of bounds for the functions.
resource "google_compute_firewall" "egress_deny_private" {
  count = var.manage_firewall ? 1 : 0

  project            = local.network_project
  name               = "${var.name}-fn-deny-private"
  description        = "The functions may reach only the private destinations allowed above."
  network            = local.network_id
  direction          = "EGRESS"
  priority           = 65000
  target_tags        = [for ep in sort(keys(local.functions)) : local.function_tags[ep]]
  destination_ranges = local.private_ranges

  deny {
    protocol = "all"
  }

  depends_on = [google_project_service.this]
}
