# ---------------------------------------------------------------------------
# Project and naming
# ---------------------------------------------------------------------------

variable "project_id" {
  description = "ID of the Google Cloud project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of the functions, Memorystore, the subnet, the buckets and the scheduler job."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a region name such as europe-west1."
  }
}

variable "name" {
  description = "Prefix of every resource name (functions, service accounts, buckets, Redis, network). Service account IDs are built from it, so it is short."
  type        = string
  default     = "fanout"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,10}[a-z0-9]$", var.name))
    error_message = "name must be 4-12 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "pubsub_name_prefix" {
  description = "Prefix of every topic and subscription name, passed to the functions as PUBSUB_NAME_PREFIX. Empty keeps the names of shared/topology (report-stage-1, aggregate, ...)."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^([a-zA-Z][a-zA-Z0-9._~%+-]{0,59})?$", var.pubsub_name_prefix))
    error_message = "pubsub_name_prefix must be empty or start with a letter and use only letters, digits and . _ ~ % + - (at most 60 characters)."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels keys must start with a lowercase letter; keys and values may use lowercase letters, digits, _ and - (at most 63 characters)."
  }
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "subnet_cidr" {
  description = "Range of the subnet the functions take addresses from for Direct VPC egress. Each instance uses addresses from it; a /24 serves about 100 instances across all functions."
  type        = string
  default     = "10.8.0.0/24"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0)) ? tonumber(split("/", var.subnet_cidr)[1]) <= 26 : false
    error_message = "subnet_cidr must be an IPv4 CIDR block of /26 or larger (Direct VPC egress needs room for instance addresses)."
  }
}

variable "vpc_egress" {
  description = "Which traffic leaves the functions through the VPC: VPC_EGRESS_PRIVATE_RANGES_ONLY (Redis, databases, RabbitMQ on private addresses; Google APIs directly) or VPC_EGRESS_ALL_TRAFFIC (everything; then the VPC needs Cloud NAT for public destinations)."
  type        = string
  default     = "VPC_EGRESS_PRIVATE_RANGES_ONLY"

  validation {
    condition     = contains(["VPC_EGRESS_PRIVATE_RANGES_ONLY", "VPC_EGRESS_ALL_TRAFFIC"], var.vpc_egress)
    error_message = "vpc_egress must be VPC_EGRESS_PRIVATE_RANGES_ONLY or VPC_EGRESS_ALL_TRAFFIC."
  }
}

variable "database_cidrs" {
  description = "Private ranges of the MySQL servers (the source databases and the record database). The functions may open database_port only to these; every other private destination is denied."
  type        = list(string)

  validation {
    condition     = length(var.database_cidrs) > 0 && alltrue([for c in var.database_cidrs : can(cidrhost(c, 0))])
    error_message = "database_cidrs must list at least one valid IPv4 CIDR block."
  }
}

variable "database_port" {
  description = "TCP port of the MySQL servers."
  type        = number
  default     = 3306

  validation {
    condition     = var.database_port >= 1 && var.database_port <= 65535 && floor(var.database_port) == var.database_port
    error_message = "database_port must be a TCP port number."
  }
}

variable "amqp_host_cidr" {
  description = "Address range of the RabbitMQ broker that holds report.trigger, as seen from the VPC (a /32 for one host). Only DrainTriggers may connect to it."
  type        = string

  validation {
    condition     = can(cidrhost(var.amqp_host_cidr, 0))
    error_message = "amqp_host_cidr must be an IPv4 CIDR block such as 10.20.0.5/32."
  }
}

variable "amqp_port" {
  description = "TCP port of the RabbitMQ broker (5671 for AMQPS, 5672 for plain AMQP)."
  type        = number
  default     = 5671

  validation {
    condition     = var.amqp_port >= 1 && var.amqp_port <= 65535 && floor(var.amqp_port) == var.amqp_port
    error_message = "amqp_port must be a TCP port number."
  }
}

# ---------------------------------------------------------------------------
# Memorystore for Redis
# ---------------------------------------------------------------------------

variable "redis_tier" {
  description = "Memorystore tier. STANDARD_HA keeps in-flight reports through a zone failure; BASIC loses them (they then fail through the dead-letter path)."
  type        = string
  default     = "STANDARD_HA"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.redis_tier)
    error_message = "redis_tier must be BASIC or STANDARD_HA."
  }
}

variable "redis_memory_size_gb" {
  description = "Memorystore capacity in GiB. The instance runs with maxmemory-policy noeviction, so a full instance rejects writes (reports fail and retry) instead of silently evicting live reports. Size it as peak reports in flight x 1.5 x their CSV size, plus headroom; the memory alert fires at alert_redis_memory_ratio."
  type        = number
  default     = 5

  validation {
    condition     = var.redis_memory_size_gb >= 1 && var.redis_memory_size_gb <= 300 && floor(var.redis_memory_size_gb) == var.redis_memory_size_gb
    error_message = "redis_memory_size_gb must be a whole number from 1 to 300."
  }
}

variable "redis_version" {
  description = "Memorystore Redis version, e.g. REDIS_7_2. TLS needs 6.0 or later."
  type        = string
  default     = "REDIS_7_2"

  validation {
    condition     = can(regex("^REDIS_([6-9]|[1-9][0-9])(_[0-9]+)?$", var.redis_version))
    error_message = "redis_version must be REDIS_6_X or later (in-transit encryption needs Redis 6)."
  }
}

variable "redis_reserved_ip_range" {
  description = "Range reserved for Memorystore in the VPC (DIRECT_PEERING). Must not overlap subnet_cidr or anything peered."
  type        = string
  default     = "10.9.0.0/29"

  validation {
    condition     = can(cidrhost(var.redis_reserved_ip_range, 0)) ? tonumber(split("/", var.redis_reserved_ip_range)[1]) <= 29 : false
    error_message = "redis_reserved_ip_range must be an IPv4 CIDR block of /29 or larger."
  }
}

# ---------------------------------------------------------------------------
# Secrets created outside Terraform (their values never enter state)
# ---------------------------------------------------------------------------

variable "record_dsn_secret" {
  description = "Secret Manager secret ID (in project_id) holding RECORD_DSN, the go-sql-driver DSN of plt_report, e.g. user:pass@tcp(10.1.0.5:3306)/plt_report. Read by DrainTriggers, Aggregate and DeadLetter."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.record_dsn_secret))
    error_message = "record_dsn_secret must be a secret ID (letters, digits, _ and -), not a full resource name."
  }
}

variable "source_dsn_secrets" {
  description = "Secret Manager secret IDs (in project_id) of the source databases' DSNs, keyed by database (plt_user, plt_fund). Each DSN must name a read-only database user; each listener reads only its own database's secret."
  type        = map(string)

  validation {
    condition     = alltrue([for db in ["plt_user", "plt_fund"] : contains(keys(var.source_dsn_secrets), db)]) && alltrue([for s in values(var.source_dsn_secrets) : can(regex("^[A-Za-z0-9_-]{1,255}$", s))])
    error_message = "source_dsn_secrets must have a secret ID for plt_user and plt_fund (letters, digits, _ and -)."
  }
}

variable "amqp_url_secret" {
  description = "Secret Manager secret ID (in project_id) holding AMQP_URL, e.g. amqps://user:pass@rabbit.internal:5671/vhost. Only DrainTriggers reads it."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.amqp_url_secret))
    error_message = "amqp_url_secret must be a secret ID (letters, digits, _ and -), not a full resource name."
  }
}

variable "cloud_sql_instances" {
  description = "Optional Cloud SQL instances behind the DSNs, as connection names (project:region:instance) keyed by plt_user, plt_fund or record. Each function that reads that database gets roles/cloudsql.client limited to that instance, for DSNs that dial through the Cloud SQL Go connector. Leave empty for private-IP DSNs."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.cloud_sql_instances : contains(["plt_user", "plt_fund", "record"], k) && can(regex("^[a-z][a-z0-9-]*:[a-z]+-[a-z]+[0-9]+:[a-z][a-z0-9-]*$", v))])
    error_message = "cloud_sql_instances keys must be plt_user, plt_fund or record and values project:region:instance connection names."
  }
}

# ---------------------------------------------------------------------------
# Database connection budget
# ---------------------------------------------------------------------------

variable "db_connection_limits" {
  description = "Connections this deployment may hold on each database (keys plt_user, plt_fund, record), e.g. the database user's max_user_connections. Applying fails if the functions' max_instance_count x db_connections_per_instance could exceed it."
  type        = map(number)
  default = {
    plt_user = 40
    plt_fund = 60
    record   = 40
  }

  validation {
    condition     = alltrue([for db in ["plt_user", "plt_fund", "record"] : contains(keys(var.db_connection_limits), db)]) && alltrue([for n in values(var.db_connection_limits) : n >= 1])
    error_message = "db_connection_limits must give a positive limit for plt_user, plt_fund and record."
  }
}

variable "db_connections_per_instance" {
  description = "Connections one function instance may hold on a database (its sql.DB pool size; instances serve one request at a time)."
  type        = number
  default     = 2

  validation {
    condition     = var.db_connections_per_instance >= 1 && floor(var.db_connections_per_instance) == var.db_connections_per_instance
    error_message = "db_connections_per_instance must be a positive whole number."
  }
}

# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------

variable "listener_max_instances" {
  description = "max_instance_count of each listener, keyed by entry point. Listeners of one database share its connection limit: plt_fund serves ListenWithdraw and ListenPayment."
  type        = map(number)
  default = {
    ListenUserTagRelation = 10
    ListenWithdraw        = 10
    ListenPayment         = 10
  }

  validation {
    condition     = alltrue([for ep in ["ListenUserTagRelation", "ListenWithdraw", "ListenPayment"] : contains(keys(var.listener_max_instances), ep)]) && alltrue([for n in values(var.listener_max_instances) : n >= 1 && n <= 100])
    error_message = "listener_max_instances must give 1-100 for ListenUserTagRelation, ListenWithdraw and ListenPayment."
  }
}

variable "listener_timeout_seconds" {
  description = "Timeout of the listener functions. At most 600: the push subscription's ack deadline (600 s maximum) must cover it."
  type        = number
  default     = 540

  validation {
    condition     = var.listener_timeout_seconds >= 10 && var.listener_timeout_seconds <= 600
    error_message = "listener_timeout_seconds must be between 10 and 600."
  }
}

variable "listener_memory" {
  description = "Memory of each listener instance (Cloud Functions notation, e.g. 512Mi)."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.listener_memory))
    error_message = "listener_memory must look like 256Mi or 1Gi."
  }
}

variable "aggregate_max_instances" {
  description = "max_instance_count of the aggregator. Each instance may hold db_connections_per_instance connections on the record database."
  type        = number
  default     = 10

  validation {
    condition     = var.aggregate_max_instances >= 1 && var.aggregate_max_instances <= 100
    error_message = "aggregate_max_instances must be between 1 and 100."
  }
}

variable "aggregate_timeout_seconds" {
  description = "Timeout of the aggregator; also its CLAIM_TTL, so a stage claim expires when the function that took it has surely stopped. At most 600 (the push ack deadline)."
  type        = number
  default     = 540

  validation {
    condition     = var.aggregate_timeout_seconds >= 60 && var.aggregate_timeout_seconds <= 600
    error_message = "aggregate_timeout_seconds must be between 60 and 600."
  }
}

variable "aggregate_memory" {
  description = "Memory of each aggregator instance."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.aggregate_memory))
    error_message = "aggregate_memory must look like 256Mi or 1Gi."
  }
}

variable "dead_letter_max_instances" {
  description = "max_instance_count of the DeadLetter function."
  type        = number
  default     = 2

  validation {
    condition     = var.dead_letter_max_instances >= 1 && var.dead_letter_max_instances <= 20
    error_message = "dead_letter_max_instances must be between 1 and 20."
  }
}

variable "dead_letter_timeout_seconds" {
  description = "Timeout of the DeadLetter function (it only updates one record)."
  type        = number
  default     = 60

  validation {
    condition     = var.dead_letter_timeout_seconds >= 10 && var.dead_letter_timeout_seconds <= 600
    error_message = "dead_letter_timeout_seconds must be between 10 and 600."
  }
}

variable "drain_for_seconds" {
  description = "How long each scheduled DrainTriggers call consumes report.trigger (DRAIN_FOR). Below one minute, so one drain ends before the next tick."
  type        = number
  default     = 50

  validation {
    condition     = var.drain_for_seconds >= 10 && var.drain_for_seconds <= 55
    error_message = "drain_for_seconds must be between 10 and 55."
  }
}

variable "drain_triggers_timeout_seconds" {
  description = "Timeout of DrainTriggers and the scheduler's attempt deadline: DRAIN_FOR plus time to finish the last publishes and close the AMQP connection."
  type        = number
  default     = 120

  validation {
    condition     = var.drain_triggers_timeout_seconds >= 60 && var.drain_triggers_timeout_seconds <= 600
    error_message = "drain_triggers_timeout_seconds must be between 60 and 600."
  }

  validation {
    condition     = var.drain_triggers_timeout_seconds >= var.drain_for_seconds + 30
    error_message = "drain_triggers_timeout_seconds must exceed drain_for_seconds by at least 30 s, to finish the last publishes after the drain."
  }
}

variable "drain_schedule" {
  description = "Cron schedule (UTC) of the DrainTriggers calls. Every minute keeps trigger latency under a minute."
  type        = string
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.drain_schedule))) == 5
    error_message = "drain_schedule must be a five-field cron expression."
  }
}

variable "trigger_queue" {
  description = "RabbitMQ queue the upstream service publishes record IDs to (TRIGGER_QUEUE)."
  type        = string
  default     = "report.trigger"

  validation {
    condition     = length(var.trigger_queue) > 0 && length(var.trigger_queue) <= 255
    error_message = "trigger_queue must be a non-empty queue name of at most 255 characters."
  }
}

# ---------------------------------------------------------------------------
# Reports bucket
# ---------------------------------------------------------------------------

variable "report_retention_days" {
  description = "Days after which a report CSV is deleted from the report bucket."
  type        = number
  default     = 30

  validation {
    condition     = var.report_retention_days >= 1 && var.report_retention_days <= 3650 && floor(var.report_retention_days) == var.report_retention_days
    error_message = "report_retention_days must be a whole number from 1 to 3650."
  }
}

variable "issue_signed_urls" {
  description = "Whether the aggregator signs V4 URLs for the reports it writes. If true, its service account may create tokens for itself (and only itself) to sign them."
  type        = bool
  default     = false
}

variable "force_destroy_buckets" {
  description = "Whether terraform destroy may delete the report and source buckets while they still hold objects. Keep false in production."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------

variable "notification_channels" {
  description = "Monitoring notification channels the alert policies notify, as full names (projects/PROJECT/notificationChannels/ID). Empty creates the alerts without notifications."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "notification_channels must be full names: projects/PROJECT/notificationChannels/ID."
  }
}

variable "alert_oldest_unacked_seconds" {
  description = "Alert when a push subscription's oldest undelivered message is older than this. A healthy pipeline delivers in seconds; a message being retried 6 x 60 s is about 6 minutes old when it dead-letters."
  type        = number
  default     = 900

  validation {
    condition     = var.alert_oldest_unacked_seconds >= 60
    error_message = "alert_oldest_unacked_seconds must be at least 60."
  }
}

variable "alert_redis_memory_ratio" {
  description = "Alert when Memorystore memory usage exceeds this fraction. With noeviction, writes fail at 1.0."
  type        = number
  default     = 0.8

  validation {
    condition     = var.alert_redis_memory_ratio > 0 && var.alert_redis_memory_ratio < 1
    error_message = "alert_redis_memory_ratio must be between 0 and 1."
  }
}

variable "alert_function_error_ratio" {
  description = "Alert when more than this fraction of a function's requests answer 5xx over 5 minutes (a 5xx is a Pub/Sub retry)."
  type        = number
  default     = 0.05

  validation {
    condition     = var.alert_function_error_ratio > 0 && var.alert_function_error_ratio < 1
    error_message = "alert_function_error_ratio must be between 0 and 1."
  }
}
