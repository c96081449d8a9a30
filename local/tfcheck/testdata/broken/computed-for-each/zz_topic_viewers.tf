# for_each over values only a provider knows: the check cannot expand it
# (nor can terraform plan before the topics exist).
resource "google_pubsub_topic_iam_member" "viewers" {
  for_each = toset([for t in values(google_pubsub_topic.topic) : t.id])

  topic  = each.key
  role   = "roles/pubsub.viewer"
  member = "serviceAccount:${google_service_account.aggregate.email}"
}
