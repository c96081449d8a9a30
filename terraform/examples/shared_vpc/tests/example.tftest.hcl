# The Shared VPC example with its own terraform.tfvars.example
# (local/terraform-check.sh passes -var-file): it plans, and every
# networking input reaches the module. Mock providers: no credentials, no
# network, no backend.

mock_provider "google" {
  override_during = plan

  # The service accounts' addresses, known in the plan.
  mock_resource "google_service_account" {
    defaults = {
      email = "fanout-fn@my-reports-prod.iam.gserviceaccount.com"
      name  = "projects/my-reports-prod/serviceAccounts/fanout-fn@my-reports-prod.iam.gserviceaccount.com"
      id    = "projects/my-reports-prod/serviceAccounts/fanout-fn@my-reports-prod.iam.gserviceaccount.com"
    }
  }
  mock_resource "google_project_iam_custom_role" {
    defaults = { name = "projects/my-reports-prod/roles/fanout_url_signer" }
  }

  # The external secrets' metadata: a live latest version.
  mock_data "google_secret_manager_secret_version" {
    defaults = { destroy_time = "", version = "1" }
  }
  mock_data "google_project" {
    defaults = { number = "123456789012" }
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

  assert {
    condition     = module.fanout_export.egress_rules["db-record"].port == 3307 && module.fanout_export.egress_rules["db-plt-user"].port == 3306
    error_message = "The Cloud SQL record database is reached on the connector's port only."
  }

  assert {
    condition     = module.fanout_export.iam_grants["serviceAccount:service-123456789012@serverless-robot-prod.iam.gserviceaccount.com"] == tolist(["roles/compute.networkUser on subnetwork reports-functions"])
    error_message = "The Cloud Run service agent may use the host's subnet, and nothing else."
  }
}
