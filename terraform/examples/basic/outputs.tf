output "function_urls" {
  description = "Function URLs by entry point (internal ingress)."
  value       = module.fanout_export.function_urls
}

output "report_bucket" {
  description = "Bucket of the report CSVs."
  value       = module.fanout_export.report_bucket
}

output "egress_rules" {
  description = "Private destinations each function may reach."
  value       = module.fanout_export.egress_rules
}

output "subnet_addresses_needed" {
  description = "Addresses the functions take from the subnet at full scale-out."
  value       = module.fanout_export.subnet_addresses_needed
}
