output "function_urls" {
  description = "Function URLs by entry point (internal ingress)."
  value       = module.fanout_export.function_urls
}

output "report_bucket" {
  description = "Bucket of the report CSVs."
  value       = module.fanout_export.report_bucket
}

output "egress_rules" {
  description = "Destinations each function may reach: the firewall rules for the host project's administrators when manage_firewall is false."
  value       = module.fanout_export.egress_rules
}

output "subnet_addresses_needed" {
  description = "Addresses the functions take from the host's subnet at full scale-out."
  value       = module.fanout_export.subnet_addresses_needed
}

output "service_accounts" {
  description = "Runtime service account of each function (the Cloud SQL IAM database users are these, up to the @)."
  value       = module.fanout_export.service_accounts
}
