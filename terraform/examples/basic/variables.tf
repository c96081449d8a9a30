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
  description = "Labels the provider adds to every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "network" {
  description = "Existing VPC (projects/PROJECT/global/networks/NAME; a Shared VPC host's too) that reaches the databases and RabbitMQ."
  type        = string
}

variable "subnetwork" {
  description = "Existing subnet of that VPC in region (projects/PROJECT/regions/REGION/subnetworks/NAME), with room for the module's subnet_addresses_needed output."
  type        = string
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
  description = "Secret ID of the record database's DSN."
  type        = string
}

variable "source_dsn_secrets" {
  description = "Secret IDs of the source databases' read-only DSNs, keyed by plt_user and plt_fund."
  type        = map(string)
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
  description = "Lifetime of the download URL in SUCCESS events; 0 for none."
  type        = number
  default     = 0
}

variable "notification_channels" {
  description = "Notification channels of the alert policies."
  type        = list(string)
  default     = []
}
