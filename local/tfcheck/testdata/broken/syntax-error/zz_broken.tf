resource "google_pubsub_topic" "unclosed" {
  name = "report-extra"
