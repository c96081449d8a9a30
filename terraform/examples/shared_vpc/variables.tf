variable "project_id" {
  description = "The service project to deploy into."
  type        = string
}

variable "project_number" {
  description = "The service project's number; null reads it at plan time (needs the Cloud Resource Manager API on)."
  type        = string
  default     = null
}

variable "region" {
  description = "Region of the functions, Memorystore, the buckets and the host's subnet."
  type        = string
  default     = "europe-west1"
}

variable "name" {
  description = "Prefix of every resource name (4-12 characters)."
  type        = string
  default     = "fanout"
}

variable "labels" {
  description = "Labels on every resource of the module that takes labels."
  type        = map(string)
  default     = {}
}

variable "host_project_id" {
  description = "The Shared VPC host project."
  type        = string
}

variable "host_network" {
  description = "Name of the Shared VPC network in the host project."
  type        = string
}

variable "host_subnetwork" {
  description = "Name of the host's subnet in region shared with this project, with room for the module's subnet_addresses_needed."
  type        = string
}

variable "redis_psa_range_name" {
  description = "Name of the host network's allocated private services access range Memorystore takes its address from; null lets Memorystore pick one of the network's ranges."
  type        = string
  default     = null
}

variable "grant_shared_vpc_access" {
  description = "Whether the module grants this project's Cloud Run service agent roles/compute.networkUser on the host's subnet (the deployer needs to set IAM on it); false leaves it to the host's administrators."
  type        = bool
  default     = true
}

variable "manage_firewall" {
  description = "Whether the module creates the egress firewall rules in the host project; false leaves them to its administrators (output egress_rules lists them)."
  type        = bool
  default     = true
}

variable "firewall_priority" {
  description = "Priority of the egress allow rules; the deny takes the next number, evaluated before the host's own allow rules of larger numbers."
  type        = number
  default     = 100
}

variable "vpc_egress" {
  description = "VPC_EGRESS_ALL_TRAFFIC (everything through the host's network, all but the functions' destinations denied) or VPC_EGRESS_PRIVATE_RANGES_ONLY."
  type        = string
  default     = "VPC_EGRESS_ALL_TRAFFIC"
}

variable "google_apis_cidr" {
  description = "With all-traffic egress: private.googleapis.com (199.36.153.8/30) or restricted.googleapis.com (199.36.153.4/30), which the host network resolves *.googleapis.com to."
  type        = string
  default     = "199.36.153.8/30"
}

variable "database_cidrs" {
  description = "Private ranges of each database (plt_user, plt_fund, record) as seen from the host network; for a Cloud SQL database, the private services access range its private IP is in."
  type        = map(list(string))
}

variable "cloud_sql_instances" {
  description = "Databases on Cloud SQL, reached through the connector with IAM database authentication, keyed by plt_user, plt_fund or record."
  type = map(object({
    connection_name = string
    database        = optional(string)
  }))
  default = {}
}

variable "amqp_host_cidr" {
  description = "Range of the RabbitMQ broker as seen from the host network."
  type        = string
}

variable "amqp_port" {
  description = "RabbitMQ port (5671 AMQPS, 5672 AMQP)."
  type        = number
  default     = 5671
}

variable "record_dsn_secret" {
  description = "Secret ID of the record database's DSN; null when record is in cloud_sql_instances."
  type        = string
  default     = null
}

variable "source_dsn_secrets" {
  description = "Secret IDs of the source databases' read-only DSNs, keyed by plt_user and plt_fund (except those in cloud_sql_instances)."
  type        = map(string)
  default     = {}
}

variable "amqp_url_secret" {
  description = "Secret ID of the AMQP URL."
  type        = string
}

variable "db_connection_limits" {
  description = "Connections the deployment may hold per database (plt_user, plt_fund, record)."
  type        = map(number)
}

variable "listener_max_instances" {
  description = "max_instance_count of each listener, keyed by entry point."
  type        = map(number)
}

variable "max_in_flight" {
  description = "Reports PROCESSING at once."
  type        = number
  default     = 10
}

variable "signed_url_ttl_seconds" {
  description = "Lifetime of the download URL in SUCCESS events; 0 for none. Whoever holds the link can download the report until then."
  type        = number
  default     = 0
}

variable "notification_channels" {
  description = "Notification channels of the alert policies."
  type        = list(string)
  default     = []
}
