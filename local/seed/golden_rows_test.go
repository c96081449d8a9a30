package seed

// Hand-derived expected rows for seed.Params
// ({"tagIds":[3,10],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}).
//
// Step 1 – users with at least one requested tag (3 or 10), tag_ids distinct
// and numerically ascending:
//
//	user  99: {3}          -> "3"
//	user 101: {10,4,3}     -> "3;10"  (4 dropped; 10 inserted first, numeric order puts 3 first)
//	user 102: {3,3}        -> "3"     (duplicate row, must not duplicate withdrawals or payments)
//	user 103: {10}         -> "10"
//	user 104: {4,30}       -> excluded
//	user 105: no tags      -> excluded
//	user 106: {3}          -> "3"
//	user 107: {10}         -> "10"    (but no withdrawal in range)
//	user 108: {3,10}       -> "3;10"  (but no withdrawals at all)
//	user 109: {10,3,10}    -> "3;10"  (duplicate tag 10)
//	user 110: {3}          -> "3"
//	user 111: {10}         -> "10"
//	user 112: {10}         -> "10"    (tag row 19; the hostile values below)
//
// Step 2 – withdrawals of those users, created_at in [from, to):
//
//	w  1 101 2026-01-05 10:00:00 in
//	w  2 101 2026-01-06 11:30:00 in   (EUR; user also has USD)
//	w  3 101 2026-01-31 23:59:59 in   (last second; status FAILED,RETRY)
//	w 30 101 2025-12-31 23:59:59 OUT  (one second before from)
//	w  9 102 2026-01-20 08:15:00 in   (status NEEDS"REVIEW; id 9 sorts before 10 numerically)
//	w 10 102 2026-01-01 00:00:00 in   (exactly at from; amount 0.00)
//	w 11 102 2026-02-01 00:00:00 OUT  (exactly at to)
//	w 12 103 2026-01-15 12:00:00 in   (amount 99999999.99)
//	w 13 103 2026-01-16 12:00:00 in   (EUR)
//	w 14,15 104 / w 16 105             excluded users
//	w 17,18 106                        in (user without any payment)
//	w 19 107 2025-12-31 23:59:59 OUT; w 20 107 2026-02-01 00:00:00 OUT; w 21 107 2026-03-01 OUT
//	w 22,23 109                        in
//	w 24,25 110                        in (w 24 amount 0.00)
//	w 26,27 111                        in (w 26 amount 99999999.99)
//	w 28,29 99                         in (user 99 first: numeric user order)
//	w 31..37 112 2026-01-14 09:00..15:00 in, one per hour:
//	     id  amount  currency  status (as stored; \t = tab, \r = carriage return)
//	     31  -12.50  USD       @SUM(A1)
//	     32    3.00  =1+       +cmd
//	     33    4.00  -US       =HYPERLINK("http   (16 characters: VARCHAR(16) is full)
//	     34    5.00  =1+       \tSUCCESS
//	     35    6.00  @EU       \rPENDING
//	     36    1.00  USD       -2+3
//	     37    2.00  USD       A=1+2@B           (trigger characters, none first)
//
// Step 3 – payments per (user, currency): status exactly SUCCESS and
// created_at in [from, to):
//
//	 99 USD: p524 1.50                          -> 1, 1.50   (p525 is EUR, user 99 has no EUR withdrawal)
//	101 USD: p501 10.00 + p502 5.55 (at from)  -> 2, 15.55  (p503 at to, p504 PENDING, p506 before from, p507 FAILED: not counted)
//	101 EUR: p505 20.00                         -> 1, 20.00
//	102 USD: p508 0.10 + p509 0.20              -> 2, 0.30   (p510 EUR not counted; duplicate tag row must not double it)
//	103 USD: p511 99999999.99 + p512 99999999.99 -> 2, 199999999.98
//	103 EUR: none                               -> 0, 0.00
//	106 USD/EUR: no payments at all             -> 0, 0.00
//	109 USD: p517 33.33 + p518 33.33 + p519 33.34 -> 3, 100.00 (equal amounts must both count)
//	110 USD: p521 PENDING only                  -> 0, 0.00
//	110 EUR: p520 0.00                          -> 1, 0.00   (count 1 although the sum is zero)
//	111 USD: p523 0.01 (last second)            -> 1, 0.01
//	111 EUR: p522 REFUNDED only                 -> 0, 0.00
//	112 USD: p529 1.00                          -> 1, 1.00
//	112 =1+: p526 2.00 + p527 3.00              -> 2, 5.00   (p530 status +cmd: not SUCCESS, not counted)
//	112 -US: p528 -1.25                         -> 1, -1.25  (a negative total, a number: never escaped)
//	112 @EU: none                               -> 0, 0.00
//
// Step 4 – formula-injection escaping (OWASP), declared per column: only
// currency and status are escaped. A cell of those two columns that starts
// with '=', '+', '-', '@', a tab or a carriage return gets a ' in front;
// every other column (ids, tag_ids, amount, created_at, payment_count,
// payment_total) and the header stay as they are. Only user 112's rows
// have such cells:
//
//	w 31: currency USD   -> USD    status @SUM(A1)          -> '@SUM(A1)    amount -12.50 stays
//	w 32: currency =1+   -> '=1+   status +cmd              -> '+cmd
//	w 33: currency -US   -> '-US   status =HYPERLINK("http  -> '=HYPERLINK("http  (payment_total -1.25 stays)
//	w 34: currency =1+   -> '=1+   status \tSUCCESS         -> '\tSUCCESS
//	w 35: currency @EU   -> '@EU   status \rPENDING         -> '\rPENDING
//	w 36: currency USD   -> USD    status -2+3              -> '-2+3
//	w 37: currency USD   -> USD    status A=1+2@B           -> A=1+2@B
//
// encoding/csv then frames the escaped cells as any other: w 33's status
// is quoted for its '"' ("'=HYPERLINK(""http"), w 35's for its carriage
// return; w 34's needs none: it now starts with ' instead of white space.
//
// Step 5 – rows ordered by user_id, then withdraw_id (both numeric): below.
//
// For seed.EmptyParams (tag 999) no user qualifies: both files are the
// header line only.

var headerWithdrawByTag = []string{"withdraw_id", "user_id", "tag_ids", "amount", "currency", "status", "created_at"}

var headerWithdrawByTagWithPayments = append(append([]string(nil), headerWithdrawByTag...), "payment_count", "payment_total")

// handRows are the rows of withdraw_by_tag_with_payments; withdraw_by_tag is
// the same rows without the last two columns.
var handRows = [][]string{
	{"28", "99", "3", "1.00", "USD", "SUCCESS", "2026-01-10T00:00:00Z", "1", "1.50"},
	{"29", "99", "3", "2.00", "USD", "PENDING", "2026-01-11T13:45:07Z", "1", "1.50"},
	{"1", "101", "3;10", "12.50", "USD", "SUCCESS", "2026-01-05T10:00:00Z", "2", "15.55"},
	{"2", "101", "3;10", "40.00", "EUR", "PENDING", "2026-01-06T11:30:00Z", "1", "20.00"},
	{"3", "101", "3;10", "7.25", "USD", "FAILED,RETRY", "2026-01-31T23:59:59Z", "2", "15.55"},
	{"9", "102", "3", "300.00", "USD", `NEEDS"REVIEW`, "2026-01-20T08:15:00Z", "2", "0.30"},
	{"10", "102", "3", "0.00", "USD", "SUCCESS", "2026-01-01T00:00:00Z", "2", "0.30"},
	{"12", "103", "10", "99999999.99", "USD", "SUCCESS", "2026-01-15T12:00:00Z", "2", "199999999.98"},
	{"13", "103", "10", "25.00", "EUR", "SUCCESS", "2026-01-16T12:00:00Z", "0", "0.00"},
	{"17", "106", "3", "10.00", "USD", "SUCCESS", "2026-01-03T09:00:00Z", "0", "0.00"},
	{"18", "106", "3", "20.00", "EUR", "REJECTED", "2026-01-04T09:00:00Z", "0", "0.00"},
	{"22", "109", "3;10", "100.00", "USD", "SUCCESS", "2026-01-07T07:07:07Z", "3", "100.00"},
	{"23", "109", "3;10", "0.01", "USD", "PENDING", "2026-01-08T08:08:08Z", "3", "100.00"},
	{"24", "110", "3", "0.00", "USD", "FAILED", "2026-01-09T00:00:00Z", "0", "0.00"},
	{"25", "110", "3", "1.10", "EUR", "SUCCESS", "2026-01-09T01:00:00Z", "1", "0.00"},
	{"26", "111", "10", "99999999.99", "USD", "SUCCESS", "2026-01-25T18:30:45Z", "1", "0.01"},
	{"27", "111", "10", "0.50", "EUR", "SUCCESS", "2026-01-26T00:00:01Z", "0", "0.00"},
	{"31", "112", "10", "-12.50", "USD", "'@SUM(A1)", "2026-01-14T09:00:00Z", "1", "1.00"},
	{"32", "112", "10", "3.00", "'=1+", "'+cmd", "2026-01-14T10:00:00Z", "2", "5.00"},
	{"33", "112", "10", "4.00", "'-US", `'=HYPERLINK("http`, "2026-01-14T11:00:00Z", "1", "-1.25"},
	{"34", "112", "10", "5.00", "'=1+", "'\tSUCCESS", "2026-01-14T12:00:00Z", "2", "5.00"},
	{"35", "112", "10", "6.00", "'@EU", "'\rPENDING", "2026-01-14T13:00:00Z", "0", "0.00"},
	{"36", "112", "10", "1.00", "USD", "'-2+3", "2026-01-14T14:00:00Z", "1", "1.00"},
	{"37", "112", "10", "2.00", "USD", "A=1+2@B", "2026-01-14T15:00:00Z", "1", "1.00"},
}

// handGolden returns the hand-derived golden file contents by name.
func handGolden() map[string][][]string {
	base := make([][]string, len(handRows))
	for i, r := range handRows {
		base[i] = r[:len(headerWithdrawByTag)]
	}
	return map[string][][]string{
		GoldenWithdrawByTag:                  append([][]string{headerWithdrawByTag}, base...),
		GoldenWithdrawByTagWithPayments:      append([][]string{headerWithdrawByTagWithPayments}, handRows...),
		GoldenEmptyWithdrawByTag:             {headerWithdrawByTag},
		GoldenEmptyWithdrawByTagWithPayments: {headerWithdrawByTagWithPayments},
	}
}
