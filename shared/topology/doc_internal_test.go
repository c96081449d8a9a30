package topology

import (
	"strings"
	"testing"
)

// TestSlugRules: a listener's slug that would make a service account ID
// Terraform cannot create, or one another account has, stops generation.
func TestSlugRules(t *testing.T) {
	t.Parallel()
	listener := func(ep, slug string) Function {
		return Function{EntryPoint: ep, Kind: KindPush, Topic: StageTopic(1), Subscription: "listen-" + slug,
			Source: "plt_x.t_" + slug, Database: "plt_x", Stage: 1, Slug: slug}
	}
	if _, err := build([]Function{listener("ListenA", "order-item")}); err != nil {
		t.Fatalf("a good slug: %v", err)
	}
	for _, tc := range []struct {
		fns  []Function
		want string
	}{
		{[]Function{listener("ListenA", "")}, "must be 2-12"},
		{[]Function{listener("ListenA", "order-line-item")}, "must be 2-12"},
		{[]Function{listener("ListenA", "Order")}, "must be 2-12"},
		{[]Function{listener("ListenA", "order-")}, "must be 2-12"},
		{[]Function{listener("ListenA", "aggregate")}, "another function's service account"},
		{[]Function{listener("ListenA", "drain")}, "another function's service account"},
		{[]Function{listener("ListenA", "order"), listener("ListenB", "order")}, "the same slug"},
	} {
		if _, err := build(tc.fns); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("slugs %q: error %v, want one containing %q", tc.fns[0].Slug, err, tc.want)
		}
	}
}
