# Generated from shared/report and shared/topology by `go generate
# ./shared/topology`; do not edit. A test of shared/topology fails when it
# is not current.
#
# The mocked google provider's values for each listener (its service
# accounts, its function's URL) and each stage topic, in a project
# test-project with the name prefix fanout; the other functions' and
# topics' are in google.tfmock.hcl.

override_resource {
  target = google_service_account.listener["ListenPayment"]
  values = {
    email  = "fanout-payment@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-payment@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-payment@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-payment@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.listener_push["ListenPayment"]
  values = {
    email  = "fanout-payment-push@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-payment-push@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-payment-push@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-payment-push@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_cloudfunctions2_function.function["ListenPayment"]
  values = {
    service_config = {
      uri = "https://fanout-listen-payment-a1b2c3d4e5-ew.a.run.app"
    }
  }
}

override_resource {
  target = google_service_account.listener["ListenPaymentRange"]
  values = {
    email  = "fanout-pay-range@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-pay-range@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-pay-range@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-pay-range@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.listener_push["ListenPaymentRange"]
  values = {
    email  = "fanout-pay-range-push@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-pay-range-push@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-pay-range-push@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-pay-range-push@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_cloudfunctions2_function.function["ListenPaymentRange"]
  values = {
    service_config = {
      uri = "https://fanout-listen-payment-range-a1b2c3d4e5-ew.a.run.app"
    }
  }
}

override_resource {
  target = google_service_account.listener["ListenUserTagRelation"]
  values = {
    email  = "fanout-user-tag@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-user-tag@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-user-tag@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-user-tag@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.listener_push["ListenUserTagRelation"]
  values = {
    email  = "fanout-user-tag-push@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-user-tag-push@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-user-tag-push@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-user-tag-push@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_cloudfunctions2_function.function["ListenUserTagRelation"]
  values = {
    service_config = {
      uri = "https://fanout-listen-user-tag-relation-a1b2c3d4e5-ew.a.run.app"
    }
  }
}

override_resource {
  target = google_service_account.listener["ListenWithdraw"]
  values = {
    email  = "fanout-withdraw@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-withdraw@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-withdraw@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-withdraw@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_service_account.listener_push["ListenWithdraw"]
  values = {
    email  = "fanout-withdraw-push@test-project.iam.gserviceaccount.com"
    member = "serviceAccount:fanout-withdraw-push@test-project.iam.gserviceaccount.com"
    name   = "projects/test-project/serviceAccounts/fanout-withdraw-push@test-project.iam.gserviceaccount.com"
    id     = "projects/test-project/serviceAccounts/fanout-withdraw-push@test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = google_cloudfunctions2_function.function["ListenWithdraw"]
  values = {
    service_config = {
      uri = "https://fanout-listen-withdraw-a1b2c3d4e5-ew.a.run.app"
    }
  }
}

override_resource {
  target = google_pubsub_topic.topic["report-stage-1"]
  values = {
    id = "projects/test-project/topics/report-stage-1"
  }
}

override_resource {
  target = google_pubsub_topic.topic["report-stage-2"]
  values = {
    id = "projects/test-project/topics/report-stage-2"
  }
}
