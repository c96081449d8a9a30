variable "project_id" {
  description = "Project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the functions, Memorystore and the buckets."
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

variable "network" {
  description = "Existing VPC of project_id (projects/PROJECT/global/networks/NAME) that reaches the databases and RabbitMQ. A Shared VPC host's network: use ../shared_vpc."
  type        = string
}

variable "subnetwork" {
  description = "Existing subnet of that VPC in region (projects/PROJECT/regions/REGION/subnetworks/NAME), with room for the module's subnet_addresses_needed output."
  type        = string
}

variable "vpc_egress" {
  description = "VPC_EGRESS_ALL_TRAFFIC (everything through the VPC, all but the functions' destinations denied) or VPC_EGRESS_PRIVATE_RANGES_ONLY."
  type        = string
  default     = "VPC_EGRESS_ALL_TRAFFIC"
}

variable "google_apis_cidr" {
  description = "With all-traffic egress: private.googleapis.com (199.36.153.8/30) or restricted.googleapis.com (199.36.153.4/30); the network must resolve *.googleapis.com to it."
  type        = string
  default     = "199.36.153.8/30"
}

variable "firewall_priority" {
  description = "Priority of the egress allow rules; the deny takes the next number, above the network's own rules."
  type        = number
  default     = 100
}

variable "redis_reserved_ip_range" {
  description = "The /29 Memorystore peers into (DIRECT_PEERING), unused in the VPC and anything peered with it."
  type        = string
  default     = "10.9.0.0/29"
}

variable "cloud_sql_instances" {
  description = "Databases on Cloud SQL, reached through the connector with IAM database authentication (no DSN secret for them), keyed by plt_user, plt_fund or record."
  type = map(object({
    connection_name = string
    database        = optional(string)
  }))
  default = {}
}

variable "database_cidrs" {
  description = "Private ranges of each database (plt_user, plt_fund, record) as seen from the VPC."
  type        = map(list(string))
}

variable "amqp_host_cidr" {
  description = "Range of the RabbitMQ broker as seen from the VPC."
  type        = string
}

variable "amqp_port" {
  description = "RabbitMQ port (5671 AMQPS, 5672 AMQP)."
  type        = number
  default     = 5671
}

variable "record_dsn_secret" {
  description = "Secret ID of the record database's DSN (null when record is in cloud_sql_instances)."
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
