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
  description = "Region of the functions, Memorystore, the subnet, the buckets and the scheduler jobs."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a region name such as europe-west1."
  }
}

variable "name" {
  description = "Prefix of every resource name (functions, service accounts, buckets, Redis, firewall rules, metrics). Service account IDs are built from it, so it is short."
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
    # Pub/Sub would also take . ~ % +, but the names go unescaped into the
    # alerts' and the dashboard's regular expressions (monitoring.tf).
    condition     = can(regex("^([a-zA-Z][a-zA-Z0-9_-]{0,59})?$", var.pubsub_name_prefix))
    error_message = "pubsub_name_prefix must be empty or start with a letter and use only letters, digits, _ and - (at most 60 characters)."
  }
}

variable "source_dir" {
  description = "Directory whose allow-listed files (go.mod, go.sum, the root package's and functions/ and shared/ Go files, no tests) are archived as the functions' source: the repository root. Null means the directory above this module, which is right when the module is used from this repository. Ignored with source_archive."
  type        = string
  default     = null
}

variable "source_archive" {
  description = "Path of a zip of the repository built elsewhere (e.g. by CI from a tagged commit: git archive --format=zip -o source.zip TAG go.mod go.sum '*.go' functions shared), uploaded as is instead of archiving source_dir. Null archives source_dir."
  type        = string
  default     = null

  validation {
    condition     = var.source_archive == null || endswith(coalesce(var.source_archive, "x"), ".zip")
    error_message = "source_archive must be the path of a .zip file."
  }
}

variable "labels" {
  description = "Labels put on every resource of the module that takes labels (functions, buckets, Memorystore, secrets, topics, subscriptions, the image repository, alert policies, the DNS zone)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels keys must start with a lowercase letter, and keys and values use only lowercase letters, digits, _ and - (at most 63 characters)."
  }
}

variable "project_number" {
  description = "The project's number. Null reads it from the project at plan time (data.google_project), which needs the Cloud Resource Manager API already enabled in the project that pays for the deployer's calls; giving it avoids that read."
  type        = string
  default     = null

  validation {
    condition     = var.project_number == null || can(regex("^[0-9]{6,20}$", coalesce(var.project_number, "x")))
    error_message = "project_number must be the project's number (digits only)."
  }
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "create_network" {
  description = "Whether to create a VPC and subnet for the functions. False (the default) uses network and subnetwork, which must already reach the databases and RabbitMQ (peering, VPN, Interconnect or a Shared VPC)."
  type        = bool
  default     = false
}

variable "network" {
  description = "The existing VPC the functions egress into, as projects/PROJECT/global/networks/NAME. PROJECT may be a Shared VPC host project; firewall rules are then created there. Ignored with create_network."
  type        = string
  default     = null

  validation {
    condition     = var.create_network || can(regex("^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/global/networks/[a-z]([-a-z0-9]*[a-z0-9])?$", var.network))
    error_message = "network must be projects/PROJECT/global/networks/NAME (or set create_network = true)."
  }
}

variable "subnetwork" {
  description = "The existing subnet the functions take their Direct VPC egress addresses from, as projects/PROJECT/regions/REGION/subnetworks/NAME, in region and in network's project. Output subnet_addresses_needed says how many addresses the functions use. Ignored with create_network."
  type        = string
  default     = null

  validation {
    condition     = var.create_network || (can(regex("^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/regions/[a-z]+-[a-z]+[0-9]+/subnetworks/[a-z]([-a-z0-9]*[a-z0-9])?$", var.subnetwork)) && try(split("/", var.subnetwork)[3] == var.region && split("/", var.subnetwork)[1] == split("/", var.network)[1], false))
    error_message = "subnetwork must be projects/PROJECT/regions/REGION/subnetworks/NAME in the functions' region and in the network's project (or set create_network = true)."
  }
}

variable "subnet_cidr" {
  description = "Range of the subnet created with create_network. The functions hold about two addresses per instance, in blocks of 16 per function: a /24 holds the defaults, a /26 (the smallest Cloud Run accepts) does not."
  type        = string
  default     = "10.8.0.0/24"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0)) ? tonumber(split("/", var.subnet_cidr)[1]) <= 26 : false
    error_message = "subnet_cidr must be an IPv4 CIDR block of /26 or larger (Direct VPC egress takes addresses in blocks of 16)."
  }
}

variable "firewall_priority" {
  description = "Priority of the egress allow rules; the rule that denies the functions everything else takes the next number (priority + 1), so it is evaluated before any allow rule of the network with a larger number (1000, the default, included) and after this module's allows. Lower it if the network already has allow rules below 101."
  type        = number
  default     = 100

  validation {
    condition     = var.firewall_priority >= 0 && var.firewall_priority <= 64999 && floor(var.firewall_priority) == var.firewall_priority
    error_message = "firewall_priority must be a whole number from 0 to 64999."
  }
}

variable "google_apis_cidr" {
  description = "With VPC_EGRESS_ALL_TRAFFIC: where the functions reach Google APIs, private.googleapis.com (199.36.153.8/30) or restricted.googleapis.com (199.36.153.4/30, with VPC Service Controls). The network must resolve *.googleapis.com to it: the module creates that DNS zone with create_network; an existing network needs it already (a Shared VPC's usually has it)."
  type        = string
  default     = "199.36.153.8/30"

  validation {
    condition     = contains(["199.36.153.8/30", "199.36.153.4/30"], var.google_apis_cidr)
    error_message = "google_apis_cidr must be 199.36.153.8/30 (private.googleapis.com) or 199.36.153.4/30 (restricted.googleapis.com)."
  }
}

variable "grant_shared_vpc_access" {
  description = "With a network in another (Shared VPC host) project: whether to grant this project's Cloud Run service agent roles/compute.networkUser on the subnet, which Direct VPC egress needs. False leaves it to the host project's administrators."
  type        = bool
  default     = true
}

variable "manage_firewall" {
  description = "Whether to create the egress firewall rules (allow each function only its destinations, deny other private ranges) in the network's project. False leaves them to the network's administrators: output egress_rules lists them."
  type        = bool
  default     = true
}

variable "vpc_egress" {
  description = "Which traffic leaves the functions through the VPC. VPC_EGRESS_ALL_TRAFFIC (the default): everything, so the firewall decides, and it denies all but each function's destinations and Google APIs at private.googleapis.com (199.36.153.8/30; the network must resolve *.googleapis.com there, which the module sets up with create_network). VPC_EGRESS_PRIVATE_RANGES_ONLY: only private destinations (RFC 1918 and 100.64.0.0/10) go through the VPC; public ones, the internet included, do not, and no firewall rule applies to them."
  type        = string
  default     = "VPC_EGRESS_ALL_TRAFFIC"

  validation {
    condition     = contains(["VPC_EGRESS_PRIVATE_RANGES_ONLY", "VPC_EGRESS_ALL_TRAFFIC"], var.vpc_egress)
    error_message = "vpc_egress must be VPC_EGRESS_PRIVATE_RANGES_ONLY or VPC_EGRESS_ALL_TRAFFIC."
  }
}

variable "database_cidrs" {
  description = "Private ranges of each MySQL database as seen from the VPC, keyed by database: each source database of topology.json (today plt_user, plt_fund) and record (the record table's database). A function may open database_port only to its own database's ranges; every other private destination is denied. A Cloud SQL private IP is in the private services access range of its network."
  type        = map(list(string))

  validation {
    condition = (
      alltrue([for db in local.databases : length(lookup(var.database_cidrs, db, [])) > 0]) &&
      alltrue([for k in keys(var.database_cidrs) : contains(local.databases, k)]) &&
      alltrue(flatten([for cidrs in values(var.database_cidrs) : [for c in cidrs : can(cidrhost(c, 0))]]))
    )
    error_message = "database_cidrs must give at least one IPv4 CIDR block for each of ${join(", ", local.databases)} (topology.json's source databases and record), and no other key."
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
  description = "Address range of the RabbitMQ broker that holds report.trigger, as seen from the VPC (a /32 for one host; an on-premises broker through VPN or Interconnect). Only DrainTriggers and Sweep may connect to it."
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
  description = "Memorystore capacity in GiB. The instance runs with maxmemory-policy noeviction, so a full instance rejects writes (reports fail and retry) instead of silently evicting live reports. Size it as max_in_flight x 1.5 x the largest CSV, plus headroom; new reports wait above redis_memory_high_water and the alert fires at alert_redis_memory_ratio."
  type        = number
  default     = 5

  validation {
    condition     = var.redis_memory_size_gb >= 1 && var.redis_memory_size_gb <= 300 && floor(var.redis_memory_size_gb) == var.redis_memory_size_gb
    error_message = "redis_memory_size_gb must be a whole number from 1 to 300."
  }
}

variable "redis_version" {
  description = "Memorystore Redis version: REDIS_6_X, REDIS_7_0, REDIS_7_2 or later. TLS needs 6 or later."
  type        = string
  default     = "REDIS_7_2"

  validation {
    condition     = can(regex("^REDIS_([6-9]|[1-9][0-9])_([0-9]+|X)$", var.redis_version))
    error_message = "redis_version must be REDIS_6_X, REDIS_7_0, REDIS_7_2 or a later REDIS_<major>_<minor> (in-transit encryption needs Redis 6)."
  }
}

variable "redis_connect_mode" {
  description = "How Memorystore joins the network: DIRECT_PEERING (a peering with reserved_ip_range) or PRIVATE_SERVICE_ACCESS (the network's private services access; the one a Shared VPC supports)."
  type        = string
  default     = "DIRECT_PEERING"

  validation {
    condition     = contains(["DIRECT_PEERING", "PRIVATE_SERVICE_ACCESS"], var.redis_connect_mode)
    error_message = "redis_connect_mode must be DIRECT_PEERING or PRIVATE_SERVICE_ACCESS."
  }
}

variable "redis_deletion_policy" {
  description = "Whether Terraform may delete Memorystore, which holds every report in flight. PREVENT (the default) fails any apply or destroy that would delete or replace it (README.md, Destroying, lists the inputs that replace it); to go through, set DELETE and apply once (it changes only the state), then apply the change or destroy."
  type        = string
  default     = "PREVENT"

  validation {
    condition     = contains(["PREVENT", "DELETE"], var.redis_deletion_policy)
    error_message = "redis_deletion_policy must be PREVENT or DELETE."
  }
}

variable "redis_reserved_ip_range" {
  description = "With DIRECT_PEERING: the /29 (or larger) range Memorystore takes, not overlapping the subnet or anything peered. With PRIVATE_SERVICE_ACCESS: the name of an allocated private services access range, or null to let Memorystore pick."
  type        = string
  default     = "10.9.0.0/29"

  validation {
    condition = var.redis_connect_mode == "PRIVATE_SERVICE_ACCESS" || (
      can(cidrhost(var.redis_reserved_ip_range, 0)) ? tonumber(split("/", var.redis_reserved_ip_range)[1]) <= 29 : false
    )
    error_message = "redis_reserved_ip_range must be an IPv4 CIDR block of /29 or larger with DIRECT_PEERING."
  }
}

# ---------------------------------------------------------------------------
# Secrets created outside Terraform (their values never enter state)
# ---------------------------------------------------------------------------

variable "record_dsn_secret" {
  description = "Secret Manager secret ID (in project_id) holding RECORD_DSN, the go-sql-driver DSN of plt_report, e.g. user:pass@tcp(10.1.0.5:3306)/plt_report. Read by DrainTriggers, Aggregate, DeadLetter and Sweep. Null (and not needed) when cloud_sql_instances has record."
  type        = string
  default     = null

  validation {
    condition     = var.record_dsn_secret == null ? contains(keys(var.cloud_sql_instances), "record") : can(regex("^[A-Za-z0-9_-]{1,255}$", var.record_dsn_secret))
    error_message = "record_dsn_secret must be a secret ID (letters, digits, _ and -), not a full resource name; it may be null only when cloud_sql_instances has record."
  }
}

variable "source_dsn_secrets" {
  description = "Secret Manager secret IDs (in project_id) of the source databases' DSNs, keyed by database: each source database of topology.json (today plt_user, plt_fund) except one of cloud_sql_instances. Each DSN must name a read-only database user; each listener reads only its own database's secret."
  type        = map(string)
  default     = {}

  validation {
    condition = (
      alltrue([for db in keys(local.source_databases) : contains(keys(var.source_dsn_secrets), db) != contains(keys(var.cloud_sql_instances), db)]) &&
      alltrue([for k, s in var.source_dsn_secrets : contains(keys(local.source_databases), k) && can(regex("^[A-Za-z0-9_-]{1,255}$", s))])
    )
    error_message = "source_dsn_secrets must have a secret ID (letters, digits, _ and -) for each source database of topology.json (${join(", ", keys(local.source_databases))}) that is not in cloud_sql_instances, and no other key."
  }
}

variable "amqp_url_secret" {
  description = "Secret Manager secret ID (in project_id) holding AMQP_URL, e.g. amqps://user:pass@rabbit.internal:5671/vhost. Read by DrainTriggers and Sweep."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.amqp_url_secret))
    error_message = "amqp_url_secret must be a secret ID (letters, digits, _ and -), not a full resource name."
  }
}

variable "cloud_sql_instances" {
  description = "Databases on Cloud SQL for MySQL, keyed by a source database of topology.json (today plt_user, plt_fund) or record: the instance's connection_name (PROJECT:REGION:INSTANCE, instance with a private IP and the cloudsql_iam_authentication flag on) and the database (default: the key, plt_report for record). The functions that read it reach it through the Cloud SQL Go connector with IAM database authentication: no DSN secret, no password; the module creates their IAM database users, grants them roles/cloudsql.client and roles/cloudsql.instanceUser on that instance only, and opens port 3307 to database_cidrs. The database's administrator grants the users SELECT (read-write on plt_report)."
  type = map(object({
    connection_name = string
    database        = optional(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for k, v in var.cloud_sql_instances : contains(local.databases, k) && can(regex("^[a-z][a-z0-9.-]*(:[a-z][a-z0-9-]*)?:[a-z]+-[a-z]+[0-9]+:[a-z][a-z0-9-]*$", v.connection_name)) && can(regex("^[A-Za-z0-9_$]{1,64}$", coalesce(v.database, k)))])
    error_message = "cloud_sql_instances keys must be databases of the deployment (${join(", ", local.databases)}), each connection_name PROJECT:REGION:INSTANCE and each database a MySQL database name."
  }
}

# ---------------------------------------------------------------------------
# Database connection budget
# ---------------------------------------------------------------------------

variable "db_connection_limits" {
  description = "Connections this deployment may hold on each database (keys: each source database of topology.json, today plt_user and plt_fund, and record), e.g. the database user's max_user_connections. Planning fails if the functions' max_instance_count x db_connections_per_instance could exceed it."
  type        = map(number)
  # Room for a listener more per source database at the default caps
  # (a listener holds 10 x 2 at most): adding a report type with a new
  # listener plans with the defaults; the precondition names what to
  # change when it does not.
  default = {
    plt_user = 100
    plt_fund = 100
    record   = 40
  }

  validation {
    condition     = alltrue([for db in local.databases : contains(keys(var.db_connection_limits), db)]) && alltrue([for n in values(var.db_connection_limits) : n >= 1])
    error_message = "db_connection_limits must give a positive limit for each of ${join(", ", local.databases)} (topology.json's source databases and record)."
  }
}

variable "db_connections_per_instance" {
  description = "Connections one function instance may hold on a database (its sql.DB pool size, DB_MAX_CONNS), whatever its request concurrency."
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
  description = "Cap on max_instance_count of listeners, keyed by entry point (the listeners of topology.json); a listener not named gets 10. A listener serves one part of a report at a time per instance; it gets min(max_in_flight x max_parts, this) instances, which must be at least max_in_flight. Below max_in_flight x max_parts the parts of a full load queue as 429s and Pub/Sub retries (6 deliveries 60 s apart). Listeners of one database share its connection limit: plt_fund serves ListenWithdraw, ListenPayment and DrainTriggers' split estimates."
  type        = map(number)
  default     = {}

  validation {
    condition     = length(setsubtract(keys(var.listener_max_instances), keys(local.listeners))) == 0 && alltrue([for n in values(var.listener_max_instances) : n >= 1 && n <= 100])
    error_message = "listener_max_instances takes 1-100 for listeners of topology.json (${join(", ", sort(keys(local.listeners)))}); not a listener: ${join(", ", sort(setsubtract(keys(var.listener_max_instances), keys(local.listeners))))}."
  }
}

variable "listener_timeout_seconds" {
  description = "Timeout of the listener functions. At most 540: a delivery that hangs right after a write, plus the 60 s before the next delivery, must fit in the report hash's 10-minute TTL (locals.tf)."
  type        = number
  default     = 540

  validation {
    condition     = var.listener_timeout_seconds >= 10 && var.listener_timeout_seconds + 60 <= 600
    error_message = "listener_timeout_seconds must be between 10 and 540: the timeout plus the 60 s retry backoff must fit in the report hash's 600 s TTL."
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
  description = "Cap on max_instance_count of the aggregator: it gets min(max_in_flight x max_parts, this) instances (one part's join per instance, so at least max_in_flight). Each instance may hold db_connections_per_instance connections on the record database."
  type        = number
  default     = 10

  validation {
    condition     = var.aggregate_max_instances >= 1 && var.aggregate_max_instances <= 100
    error_message = "aggregate_max_instances must be between 1 and 100."
  }
}

variable "aggregate_timeout_seconds" {
  description = "Timeout of the aggregator; also its CLAIM_TTL, so a stage claim expires when the function that took it has surely stopped. At most 540: the timeout plus the 60 s retry backoff must fit in the report hash's 10-minute TTL."
  type        = number
  default     = 540

  validation {
    condition     = var.aggregate_timeout_seconds >= 60 && var.aggregate_timeout_seconds + 60 <= 600
    error_message = "aggregate_timeout_seconds must be between 60 and 540: the timeout plus the 60 s retry backoff must fit in the report hash's 600 s TTL."
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
  description = "max_instance_count of the DeadLetter function. Its instances x dead_letter_concurrency must be at least max_in_flight."
  type        = number
  default     = 2

  validation {
    condition     = var.dead_letter_max_instances >= 1 && var.dead_letter_max_instances <= 20
    error_message = "dead_letter_max_instances must be between 1 and 20."
  }
}

variable "dead_letter_concurrency" {
  description = "Requests one DeadLetter instance serves at once. Above 1 the function gets a whole CPU (Cloud Run's rule); its requests share the instance's db_connections_per_instance connections."
  type        = number
  default     = 5

  validation {
    condition     = var.dead_letter_concurrency >= 1 && var.dead_letter_concurrency <= 80 && floor(var.dead_letter_concurrency) == var.dead_letter_concurrency
    error_message = "dead_letter_concurrency must be a whole number from 1 to 80."
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
  description = "Timeout of DrainTriggers and its scheduler job's attempt deadline: DRAIN_FOR plus time to finish the last publishes and close the AMQP connection."
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
  description = "Cron schedule (UTC) of the DrainTriggers calls. Every minute keeps trigger latency, and the delay of completion events to RabbitMQ, under a minute."
  type        = string
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.drain_schedule))) == 5
    error_message = "drain_schedule must be a five-field cron expression."
  }
}

variable "trigger_queue" {
  description = "RabbitMQ queue the upstream service publishes record IDs to (TRIGGER_QUEUE of DrainTriggers and Sweep)."
  type        = string
  default     = "report.trigger"

  validation {
    condition     = length(var.trigger_queue) > 0 && length(var.trigger_queue) <= 255
    error_message = "trigger_queue must be a non-empty queue name of at most 255 characters."
  }
}

variable "sweep_schedule" {
  description = "Cron schedule (UTC) of the Sweep calls."
  type        = string
  default     = "*/5 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.sweep_schedule))) == 5
    error_message = "sweep_schedule must be a five-field cron expression."
  }
}

variable "sweep_timeout_seconds" {
  description = "Timeout of Sweep and its scheduler job's attempt deadline. Below the 5-minute schedule, so sweeps rarely overlap (an overlap does no harm)."
  type        = number
  default     = 240

  validation {
    condition     = var.sweep_timeout_seconds >= 30 && var.sweep_timeout_seconds <= 1800
    error_message = "sweep_timeout_seconds must be between 30 and 1800 (Cloud Scheduler's longest attempt deadline)."
  }
}

variable "sweep_pending_after" {
  description = "SWEEP_PENDING_AFTER: a record PENDING for longer has its trigger republished to trigger_queue (at most once per interval). A Go duration."
  type        = string
  default     = "15m"

  validation {
    condition     = can(regex("^([0-9]+(h|m|s))+$", var.sweep_pending_after))
    error_message = "sweep_pending_after must be a duration such as 15m or 1h30m."
  }
}

variable "sweep_processing_after" {
  description = "SWEEP_PROCESSING_AFTER: a record PROCESSING for longer (with its hash) ends FAILED naming the stage and the listeners missing. A Go duration."
  type        = string
  default     = "2h"

  validation {
    condition     = can(regex("^([0-9]+(h|m|s))+$", var.sweep_processing_after))
    error_message = "sweep_processing_after must be a duration such as 2h or 90m."
  }
}

# ---------------------------------------------------------------------------
# Back-pressure and limits
# ---------------------------------------------------------------------------

variable "max_in_flight" {
  description = "MAX_IN_FLIGHT: reports PROCESSING at once; DrainTriggers keeps the rest waiting in RabbitMQ. Every push function must serve that many requests at once (max instances x request concurrency), or saturation answers 429 and fails reports: planning checks it."
  type        = number
  default     = 10

  validation {
    condition     = var.max_in_flight >= 1 && floor(var.max_in_flight) == var.max_in_flight
    error_message = "max_in_flight must be a positive whole number."
  }
}

variable "part_rows" {
  description = "PART_ROWS: target rows of one part. DrainTriggers estimates each report's rows from its source database (EXPLAIN, through DSN_PLT_FUND) and splits a report above it into key-range parts that run in parallel end to end; at or below it a report is one part."
  type        = number
  default     = 250000

  validation {
    condition     = var.part_rows >= 1 && floor(var.part_rows) == var.part_rows
    error_message = "part_rows must be a whole number of at least 1 (PART_ROWS)."
  }
}

variable "max_parts" {
  description = "MAX_PARTS: the most parts one report is split into (1 turns splitting off). Listeners and Aggregate are sized for max_in_flight x max_parts deliveries at once, capped by listener_max_instances and aggregate_max_instances."
  type        = number
  default     = 64

  validation {
    condition     = var.max_parts >= 1 && var.max_parts <= 1024 && floor(var.max_parts) == var.max_parts
    error_message = "max_parts must be a whole number from 1 to 1024 (MAX_PARTS; config.MaxParts)."
  }
}

variable "throttle_queue" {
  description = "THROTTLE_QUEUE: the RabbitMQ queue where DrainTriggers parks triggers beyond max_in_flight (or above the Redis high-water mark) for throttle_delay_seconds."
  type        = string
  default     = "report.trigger.throttled"

  validation {
    condition     = length(var.throttle_queue) > 0 && length(var.throttle_queue) <= 255
    error_message = "throttle_queue must be a non-empty queue name of at most 255 characters."
  }
}

variable "throttle_delay_seconds" {
  description = "THROTTLE_DELAY: how long a throttled trigger waits before it is offered again (DrainTriggers' own default, 5 s)."
  type        = number
  default     = 5

  validation {
    condition     = var.throttle_delay_seconds >= 1 && var.throttle_delay_seconds <= 3600 && floor(var.throttle_delay_seconds) == var.throttle_delay_seconds
    error_message = "throttle_delay_seconds must be a whole number from 1 to 3600."
  }
}

variable "redis_memory_high_water" {
  description = "REDIS_MEMORY_HIGH_WATER: the fraction of Memorystore's maxmemory above which new reports wait (Memorystore runs noeviction). Keep it below alert_redis_memory_ratio."
  type        = number
  default     = 0.7

  validation {
    condition     = var.redis_memory_high_water > 0 && var.redis_memory_high_water <= 1
    error_message = "redis_memory_high_water must be a fraction above 0 and at most 1."
  }
}

variable "completed_exchange" {
  description = "COMPLETED_EXCHANGE: the durable RabbitMQ fanout exchange DrainTriggers forwards completion events to (declared by DrainTriggers)."
  type        = string
  default     = "report.completed"

  validation {
    condition     = length(var.completed_exchange) > 0 && length(var.completed_exchange) <= 255
    error_message = "completed_exchange must be a non-empty exchange name of at most 255 characters."
  }
}

variable "max_report_rows" {
  description = "MAX_REPORT_ROWS of the listeners and the aggregator: a report with more rows ends FAILED (\"report exceeds N rows; narrow the filter\"). 0 means no limit."
  type        = number
  default     = 0

  validation {
    condition     = var.max_report_rows >= 0 && floor(var.max_report_rows) == var.max_report_rows
    error_message = "max_report_rows must be a whole number, 0 for no limit."
  }
}

# ---------------------------------------------------------------------------
# Buckets and signed URLs
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

variable "signed_url_ttl_seconds" {
  description = "SIGNED_URL_TTL: lifetime of the download URL a SUCCESS completion event carries; 0 (the default) sends no URL. When set, the functions that announce completion (DrainTriggers, Aggregate, DeadLetter, Sweep) sign with their own identity through the IAM Credentials API (enabled here): each may create tokens for itself only, and may read the report objects it links to."
  type        = number
  default     = 0

  validation {
    condition     = var.signed_url_ttl_seconds >= 0 && var.signed_url_ttl_seconds <= 604800 && floor(var.signed_url_ttl_seconds) == var.signed_url_ttl_seconds
    error_message = "signed_url_ttl_seconds must be a whole number from 0 to 604800 (V4 signed URLs last at most 7 days)."
  }
}

variable "report_soft_delete_days" {
  description = "Days a deleted or overwritten report CSV stays recoverable in the report bucket's soft delete (7 is Cloud Storage's default; 0 turns it off, so a mistaken delete or a bucket emptied by force_destroy_buckets is final)."
  type        = number
  default     = 7

  validation {
    condition     = var.report_soft_delete_days == 0 || (var.report_soft_delete_days >= 7 && var.report_soft_delete_days <= 90 && floor(var.report_soft_delete_days) == var.report_soft_delete_days)
    error_message = "report_soft_delete_days must be 0 or a whole number from 7 to 90 (Cloud Storage's bounds)."
  }
}

variable "source_retention_days" {
  description = "Days a superseded source archive is kept in the source bucket (for a rollback) before it is deleted. The live archive is never deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.source_retention_days >= 1 && floor(var.source_retention_days) == var.source_retention_days
    error_message = "source_retention_days must be a positive whole number."
  }
}

variable "force_destroy_buckets" {
  description = "Whether terraform destroy may delete the report and source buckets while they still hold objects. Keep false in production."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# First apply
# ---------------------------------------------------------------------------

variable "iam_propagation_seconds" {
  description = "How long to wait after IAM grants before the builds and the functions' first secret reads use them, before the first push or scheduled call, and after enabling Pub/Sub before granting its service agent. Waits only when those grants change."
  type        = number
  default     = 60

  validation {
    condition     = var.iam_propagation_seconds >= 0 && var.iam_propagation_seconds <= 600 && floor(var.iam_propagation_seconds) == var.iam_propagation_seconds
    error_message = "iam_propagation_seconds must be a whole number from 0 to 600."
  }
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
  description = "Alert when a push subscription's oldest undelivered message (or report-completed-amqp's oldest event) is older than this. A healthy pipeline delivers in seconds; a message being retried 6 x 60 s is about 6 minutes old when it dead-letters."
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
