# A root module that deploys the fan-out export into a Shared VPC: this
# (service) project runs the functions, Memorystore and the buckets; the
# host project owns the network, its subnet, its firewall and its private
# services access. The record database is on Cloud SQL, reached through
# the Cloud SQL Go connector with IAM database authentication. README.md
# here says what the host project's administrators must have done first.
#
#   cp terraform.tfvars.example terraform.tfvars   # fill it in
#   terraform init -backend-config="bucket=my-tf-state"
#   terraform apply

terraform {
  required_version = ">= 1.11.0"

  # State holds the Memorystore AUTH string: keep it in a bucket only the
  # deployers can read.
  backend "gcs" {
    prefix = "fanout-export"
  }

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.21.0, < 8.0.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.11.0, < 1.0.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "fanout_export" {
  # From another repository: "git::https://github.com/ORG/fanoutexport.git//terraform?ref=TAG"
  source = "../.."

  project_id     = var.project_id
  project_number = var.project_number
  region         = var.region
  name           = var.name
  labels         = var.labels

  # The host project's network and subnet. Memorystore joins it through
  # the host's private services access (a service project cannot peer
  # directly); the module grants this project's Cloud Run service agent
  # roles/compute.networkUser on the subnet, and creates the egress
  # firewall rules in the host project, unless the host's administrators
  # do both (grant_shared_vpc_access, manage_firewall = false).
  network                 = "projects/${var.host_project_id}/global/networks/${var.host_network}"
  subnetwork              = "projects/${var.host_project_id}/regions/${var.region}/subnetworks/${var.host_subnetwork}"
  redis_connect_mode      = "PRIVATE_SERVICE_ACCESS"
  redis_reserved_ip_range = var.redis_psa_range_name
  grant_shared_vpc_access = var.grant_shared_vpc_access
  manage_firewall         = var.manage_firewall
  firewall_priority       = var.firewall_priority
  vpc_egress              = var.vpc_egress
  google_apis_cidr        = var.google_apis_cidr

  database_cidrs      = var.database_cidrs
  cloud_sql_instances = var.cloud_sql_instances
  amqp_host_cidr      = var.amqp_host_cidr
  amqp_port           = var.amqp_port

  record_dsn_secret  = var.record_dsn_secret
  source_dsn_secrets = var.source_dsn_secrets
  amqp_url_secret    = var.amqp_url_secret

  db_connection_limits   = var.db_connection_limits
  listener_max_instances = var.listener_max_instances
  max_in_flight          = var.max_in_flight
  signed_url_ttl_seconds = var.signed_url_ttl_seconds
  notification_channels  = var.notification_channels
}
