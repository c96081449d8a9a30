package report

import (
	"fmt"

	"github.com/fanoutexport/fanoutexport/shared/output"
)

// paymentRange reads the SUCCESS payments in [From, To) of the part's
// users, ordered by (user_id, id): payment_by_tag's rows before the tag
// filter, read in stage 1 beside the tag relation as ListenWithdraw reads
// withdrawals. ListenPayment reads the same table in stage 2 of
// withdraw_by_tag_with_payments; no report reads both.
var paymentRange = addSource(Source{
	Database: "plt_fund", Table: "vs_payment", Key: "user_id",
	Columns: []Column{
		{"user_id", Int}, {"id", Int}, {"amount", Text}, {"currency", Text}, {"created_at", Time},
	},
	Stage:      1,
	EntryPoint: "ListenPaymentRange", Subscription: "listen-payment-range", Slug: "pay-range",
	Build: func(p Params, b Bounds, _ [][]string) (Query, error) {
		pred, bargs := and(b.Predicate("user_id"))
		return partQuery("SELECT user_id, id, amount, currency, created_at FROM vs_payment", paymentKeyIndex,
			"WHERE status = 'SUCCESS' AND created_at >= ? AND created_at < ?"+pred+" ORDER BY user_id, id",
			b, append([]any{p.From, p.To}, bargs...)), nil
	},
	DDL: payment.DDL,
	// Both indexes cover the query, as vs_withdraw's: idx_user_paid reads a
	// part (a range of users) in order, and Split counts key ranges on it
	// and the time range on idx_created; idx_created reads a one-part
	// report's time range without a table page (10M: a small report's
	// payments came from disk once big reports had filled the buffer pool).
	// A part keeps to idx_user_paid (partQuery).
	Indexes: []Index{
		{Name: "idx_created", Columns: "(created_at, status, user_id, id, amount, currency)"},
		{Name: paymentKeyIndex, Columns: "(user_id, id, status, created_at, amount, currency)"},
	},
})

// paymentKeyIndex is vs_payment's (user_id, id, …) index: Split counts a
// payment_by_tag report's parts on it, and each part is read on it.
const paymentKeyIndex = "idx_user_paid"

func init() {
	addReport(Report{
		Type: "payment_by_tag",
		// Finance opens it in spreadsheets: the byte-order mark makes
		// them read the file as UTF-8.
		CSV: output.Format{BOM: true, Columns: []output.Column{
			{Name: "payment_id"}, {Name: "user_id"}, {Name: "tag_ids"}, {Name: "amount"},
			{Name: "currency", Escape: true}, {Name: "created_at"},
		}},
		Stages: [][]Source{{userTagRelation, paymentRange}},
		Join:   TaggedRows(paymentRange, "id", "user_id", TagIDs, "amount", "currency", "created_at"),
		// Every CSV row is one of the payments the listener reads.
		SplitBy: &SplitBy{
			Source:   paymentRange,
			KeyIndex: paymentKeyIndex,
			Filter: func(p Params) RangeFilter {
				return RangeFilter{Column: "created_at", Index: "idx_created", From: p.From, To: p.To}
			},
		},
		Reference: []Reference{{Name: "join", Build: func(db RefDB, p Params) Query {
			tags, args := RefUserTags(db, p)
			return Query{SQL: fmt.Sprintf(`SELECT p.id, p.user_id, t.tag_ids, p.amount, %s, %s
FROM %s p
JOIN %s t ON t.user_id = p.user_id
WHERE p.status %s 'SUCCESS' AND p.created_at >= ? AND p.created_at < ?
ORDER BY p.user_id, p.id`, RefEscaped("p.currency"), RefTime("p.created_at"),
				db.Table("plt_fund", "vs_payment"), tags, db.Eq()), Args: append(args, RefRange(p)...)}
		}}},
		Example: TagExample, EmptyExample: TagEmptyExample,
	})
}
