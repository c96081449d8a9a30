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
    # 176 for the functions of the example's tfvars; a listener it does not
    # name (topology.json has more than its three) runs 10 instances: 32.
    condition     = module.fanout_export.subnet_addresses_needed == 176 + 32 * (length(jsondecode(file("../../topology.json")).listeners) - 3)
    error_message = "The example's instances need 176 subnet addresses (and 32 per listener beyond three), not ${module.fanout_export.subnet_addresses_needed}."
  }

  assert {
    condition     = sort(keys(module.fanout_export.egress_rules)) == sort(["amqp", "db-plt-fund", "db-plt-user", "db-record", "google-apis", "redis"])
    error_message = "The example allows egress to Google APIs, Redis, RabbitMQ and each database."
  }
}
