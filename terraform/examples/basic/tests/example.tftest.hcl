# The example root module with its own terraform.tfvars.example
# (local/terraform-check.sh passes -var-file): every variable without a
# default is set, every value passes the module's validations, and the
# module plans. Mock providers: no credentials, no network, no backend.

mock_provider "google" {
  # The external secrets' metadata: a live latest version.
  mock_data "google_secret_manager_secret_version" {
    defaults = { destroy_time = "", version = "1" }
  }
}

mock_provider "time" {}

run "example_plans" {
  command = plan

  assert {
    condition     = module.fanout_export.subnet_addresses_needed == 176
    error_message = "The example's instances need 176 subnet addresses, not ${module.fanout_export.subnet_addresses_needed}."
  }

  assert {
    condition     = sort(keys(module.fanout_export.egress_rules)) == sort(["amqp", "db-plt-fund", "db-plt-user", "db-record", "google-apis", "redis"])
    error_message = "The example allows egress to Google APIs, Redis, RabbitMQ and each database."
  }
}
