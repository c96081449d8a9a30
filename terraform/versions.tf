terraform {
  # 1.11 for write-only arguments (secret_data_wo keeps the Redis AUTH string
  # out of the secret version's state).
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.21 is the first release whose google_cloudfunctions2_function
      # supports Direct VPC egress (service_config.direct_vpc_network_interface).
      version = ">= 7.21.0, < 8.0.0"
    }
    archive = {
      source = "hashicorp/archive"
      # 2.5+ reads excludes as doublestar globs ("**/*_test.go").
      version = "~> 2.7"
    }
  }
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}
