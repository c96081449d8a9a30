package dlq

import "testing"

// Pub/Sub's dead-letter attribute names the source subscription; the
// relay sends the short name, production may send the full path.
func TestSourceOfSubscription(t *testing.T) {
	t.Parallel()
	tests := []struct{ sub, prefix, want string }{
		{"projects/p/subscriptions/listen-withdraw", "", "plt_fund.vs_withdraw"},
		{"listen-withdraw", "", "plt_fund.vs_withdraw"},
		{"projects/p/subscriptions/dev-listen-payment", "dev-", "plt_fund.vs_payment"},
		{"listen-user-tag-relation", "", "plt_user.vs_user_tag_relation"},
		{"projects/p/subscriptions/aggregate", "", "aggregate"},
		{"projects/p/subscriptions/something-else", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := sourceOfSubscription(tt.sub, tt.prefix); got != tt.want {
			t.Errorf("sourceOfSubscription(%q, %q) = %q, want %q", tt.sub, tt.prefix, got, tt.want)
		}
	}
}
