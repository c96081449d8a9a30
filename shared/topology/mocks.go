package topology

import (
	"bytes"
	"fmt"
	"sort"
)

// MocksHCL is terraform/tests/mocks/topology.tfmock.hcl, which `go generate
// ./shared/topology` writes beside topology.json: the values the mocked
// google provider gives each listener's service accounts and function and
// each stage topic in terraform/tests (name prefix fanout, project
// test-project), which only the provider would know. A new listener gets
// them without a hand-written mock.
func MocksHCL() ([]byte, error) {
	d, err := Build()
	if err != nil {
		return nil, err
	}
	return Mocks(d), nil
}

// Mocks is MocksHCL for document d.
func Mocks(d Document) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated from shared/report and shared/topology by `go generate\n" +
		"# ./shared/topology`; do not edit. A test of shared/topology fails when it\n" +
		"# is not current.\n#\n" +
		"# The mocked google provider's values for each listener (its service\n" +
		"# accounts, its function's URL) and each stage topic, in a project\n" +
		"# test-project with the name prefix fanout; the other functions' and\n" +
		"# topics' are in google.tfmock.hcl.\n")
	eps := make([]string, 0, len(d.Listeners))
	for ep := range d.Listeners {
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	account := func(target, id string) {
		email := id + "@test-project.iam.gserviceaccount.com"
		fmt.Fprintf(&b, `
override_resource {
  target = %s
  values = {
    email  = "%s"
    member = "serviceAccount:%s"
    name   = "projects/test-project/serviceAccounts/%s"
    id     = "projects/test-project/serviceAccounts/%s"
  }
}
`, target, email, email, email, email)
	}
	for _, ep := range eps {
		l := d.Listeners[ep]
		account(fmt.Sprintf("google_service_account.listener[%q]", ep), "fanout-"+l.Slug)
		account(fmt.Sprintf("google_service_account.listener_push[%q]", ep), "fanout-"+l.Slug+"-push")
		fmt.Fprintf(&b, `
override_resource {
  target = google_cloudfunctions2_function.function[%q]
  values = {
    service_config = {
      uri = "https://fanout-%s-a1b2c3d4e5-ew.a.run.app"
    }
  }
}
`, ep, l.Subscription)
	}
	for _, t := range d.StageTopics {
		fmt.Fprintf(&b, `
override_resource {
  target = google_pubsub_topic.topic[%q]
  values = {
    id = "projects/test-project/topics/%s"
  }
}
`, t, t)
	}
	return b.Bytes()
}
