# The functions reach Memorystore, the MySQL servers and RabbitMQ through
# Direct VPC egress (no Serverless VPC Access connector). Egress to private
# ranges is allowed only where each function needs it.

resource "google_compute_network" "vpc" {
  name                    = "${var.name}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.this]
}

resource "google_compute_subnetwork" "functions" {
  name          = "${var.name}-functions"
  region        = var.region
  network       = google_compute_network.vpc.id
  ip_cidr_range = var.subnet_cidr

  # Lets VPC_EGRESS_ALL_TRAFFIC functions reach Google APIs without NAT.
  private_ip_google_access = true
}

# Every function: Redis AUTH over TLS on Memorystore's TLS port.
resource "google_compute_firewall" "functions_to_redis" {
  name               = "${var.name}-fn-to-redis"
  network            = google_compute_network.vpc.id
  direction          = "EGRESS"
  priority           = 1000
  target_tags        = [local.function_tag]
  destination_ranges = [var.redis_reserved_ip_range]

  allow {
    protocol = "tcp"
    ports    = ["6378"]
  }
}

# Listeners read their source database; DrainTriggers, Aggregate and
# DeadLetter the record database.
resource "google_compute_firewall" "functions_to_databases" {
  name               = "${var.name}-fn-to-mysql"
  network            = google_compute_network.vpc.id
  direction          = "EGRESS"
  priority           = 1000
  target_tags        = [local.function_tag]
  destination_ranges = var.database_cidrs

  allow {
    protocol = "tcp"
    ports    = [tostring(var.database_port)]
  }
}

# Only DrainTriggers talks to RabbitMQ.
resource "google_compute_firewall" "drain_to_amqp" {
  name               = "${var.name}-drain-to-amqp"
  network            = google_compute_network.vpc.id
  direction          = "EGRESS"
  priority           = 1000
  target_tags        = [local.drain_tag]
  destination_ranges = [var.amqp_host_cidr]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.amqp_port)]
  }
}

# Everything else private is out of bounds for the functions.
resource "google_compute_firewall" "functions_deny_private" {
  name               = "${var.name}-fn-deny-private"
  network            = google_compute_network.vpc.id
  direction          = "EGRESS"
  priority           = 65000
  target_tags        = [local.function_tag]
  destination_ranges = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]

  deny {
    protocol = "all"
  }
}
