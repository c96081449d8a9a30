# A root module that deploys the fan-out export into an existing VPC of
# the same project (for a Shared VPC host project's network, see
# ../shared_vpc): the provider configuration and the state backend belong
# here, not in the module. Copy this directory next to your other root modules (and point
# source at the module's git address), or run it in place:
#
#   cp terraform.tfvars.example terraform.tfvars   # fill it in
#   terraform init -backend-config="bucket=my-tf-state"
#   terraform apply

terraform {
  required_version = ">= 1.11.0"

  # State holds the Memorystore AUTH string: keep it in a bucket only the
  # deployers can read (uniform access, versioning on). The bucket is given
  # at init time (-backend-config), so this file names none.
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

  project_id = var.project_id
  region     = var.region
  name       = var.name
  labels     = var.labels

  # Networking: every input documented in variables.tf and
  # terraform.tfvars.example is passed on (local/tfcheck checks it).
  network                 = var.network
  subnetwork              = var.subnetwork
  vpc_egress              = var.vpc_egress
  google_apis_cidr        = var.google_apis_cidr
  firewall_priority       = var.firewall_priority
  redis_connect_mode      = "DIRECT_PEERING"
  redis_reserved_ip_range = var.redis_reserved_ip_range

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
