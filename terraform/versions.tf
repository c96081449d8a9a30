# The module configures no provider: the caller does (examples/basic shows
# the provider block and a backend).
terraform {
  # 1.9 for validations that read other variables; 1.11 for the tests'
  # mock overrides (tests/).
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
    time = {
      source = "hashicorp/time"
      # time_sleep with triggers: waits for IAM propagation (iam.tf).
      version = ">= 0.11.0, < 1.0.0"
    }
  }
}
