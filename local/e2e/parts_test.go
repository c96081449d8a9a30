package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/output"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// partsEnv gives DrainTriggers tiny parts: the seed's 30-odd withdrawals in the
// report's range become many key-range parts, several users heavier than
// a part, and parts whose users have no requested tag (empty segments).
func partsEnv(partRows int) func(*env) map[string][]string {
	return func(*env) map[string][]string {
		return map[string][]string{"draintriggers": {fmt.Sprintf("PART_ROWS=%d", partRows), "MAX_PARTS=200"}}
	}
}

// dispatchedParts reads DrainTriggers' log: the parts record id was split into.
func dispatchedParts(t *testing.T, e *env, id int64) int {
	t.Helper()
	parts := 0
	for _, l := range logLines(t, e, "draintriggers", id, "report dispatched") {
		parts = l.Parts
	}
	return parts
}

// segmentsLeft lists the objects left under record id's temporary prefix.
func segmentsLeft(t *testing.T, e *env, id int64) []string {
	t.Helper()
	objs, _, err := e.stack.GCS.ListObjectsWithOptions("reports", fakestorage.ListOptions{Prefix: output.SegmentPrefix(id)})
	if err != nil {
		t.Fatalf("list segments of record %d: %v", id, err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	return names
}

// Every golden report split into many parts (one to three withdrawals
// each) is byte-identical to the golden CSV, which the single-part run and
// the reference query produce too (TestGoldenReports, local/seed): both
// report types, the header-only results, parts with no rows, users
// heavier than a part. No segment and no hash is left behind.
func TestGoldenReportsInManyParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{envFor: partsEnv(2)})
	ids := runGoldens(t, e)
	for i, g := range goldens {
		id := ids[i]
		if id == 0 {
			continue
		}
		if n := dispatchedParts(t, e, id); n < 4 {
			t.Errorf("%s: record %d dispatched in %d parts, want many (PART_ROWS=2)", g.file, id, n)
		}
		if left := segmentsLeft(t, e, id); len(left) > 0 {
			t.Errorf("%s: segments left after SUCCESS: %v", g.file, left)
		}
	}
}

// A duplicate of every message, every part's included, delivered at once:
// each part counts once, each part's stage is acted on once, one compose,
// one upload of the final object, one SUCCESS.
func TestManyPartsEveryMessageTwice(t *testing.T) {
	t.Parallel()
	var seen deliveries
	e := newEnv(t, options{duplicate: true, observe: seen.add, envFor: partsEnv(2)})
	e.keepVersions()
	ids := runGoldens(t, e)
	waitSettled(t, e, &seen, append(listenerSubs(), "aggregate"))
	for i, g := range goldens {
		id := ids[i]
		if id == 0 {
			continue
		}
		if n := e.uploads(id); n != 1 {
			t.Errorf("%s: %d versions of record %d's object, want 1", g.file, n, id)
		}
		if n := countLogLines(t, e, "Aggregate", id, "report SUCCESS"); n != 1 {
			t.Errorf("%s: aggregator marked record %d SUCCESS %d times, want 1", g.file, id, n)
		}
		parts := dispatchedParts(t, e, id)
		if n := countLogLines(t, e, "Aggregate", id, "part's segment written"); n < parts {
			t.Errorf("%s: %d segment lines for %d parts", g.file, n, parts)
		}
		if left := segmentsLeft(t, e, id); len(left) > 0 {
			t.Errorf("%s: segments left after SUCCESS: %v", g.file, left)
		}
	}
}

// A part whose listener fails every delivery, for real: ListenWithdraw
// reads a vs_withdraw that is a view raising an error for one user's
// rows, so only the part holding that user fails (DrainTriggers plans on the
// real table). After 6 deliveries the part dead-letters: the record ends
// FAILED naming the listener and the part's key range, and the other
// parts stop and leave no hash and no segment behind.
func TestPartDeadLetters(t *testing.T) {
	t.Parallel()
	const boomUser = 103
	e := newEnv(t, options{envFor: func(e *env) map[string][]string {
		dsn := e.emptyDatabase("boom")
		db, err := serverenv.OpenDB(dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx := context.Background()
		for _, q := range []string{
			fmt.Sprintf("CREATE TABLE withdraw_rows AS SELECT * FROM `%s`.vs_withdraw", fundDatabase(t, e)),
			// In the select list, not on the key: evaluated only for the
			// rows the part's bounds select.
			fmt.Sprintf(`CREATE FUNCTION boom(u BIGINT, i BIGINT) RETURNS BIGINT DETERMINISTIC
BEGIN
  IF u = %d THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected fault for user %d'; END IF;
  RETURN i;
END`, boomUser, boomUser),
			"CREATE VIEW vs_withdraw AS SELECT user_id, boom(user_id, id) AS id, amount, currency, status, created_at FROM withdraw_rows",
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return map[string][]string{"draintriggers": {"PART_ROWS=2", "MAX_PARTS=200"}, "ListenWithdraw": {"DSN_PLT_FUND=" + dsn}}
	}})
	id := e.request("withdraw_by_tag", seed.Params)
	rec := e.wait(id, 3*time.Minute)
	if rec.Status != record.Failed {
		t.Fatalf("record %d is %s, want FAILED", id, rec.Status)
	}
	parts := dispatchedParts(t, e, id)
	if parts < 4 {
		t.Errorf("dispatched in %d parts, want many", parts)
	}
	for _, want := range []string{"stage 1 listener plt_fund.vs_withdraw failed 6 delivery attempts", fmt.Sprintf(" of %d, user_id ", parts), fmt.Sprintf("injected fault for user %d", boomUser)} {
		if !strings.Contains(rec.FailReason, want) {
			t.Errorf("fail_reason %q does not mention %q", rec.FailReason, want)
		}
	}
	if !rangeHolds(rec.FailReason, boomUser) {
		t.Errorf("fail_reason %q names a range that does not hold user %d", rec.FailReason, boomUser)
	}
	if !e.hashGone(id) {
		t.Errorf("hash of FAILED record %d still in Redis", id)
	}
	// The other parts may still be finishing when the record fails: the
	// aggregator deletes what they write once it finds the record FAILED.
	waitFor(t, 30*time.Second, "no segment left after FAILED", func() bool { return len(segmentsLeft(t, e, id)) == 0 })
	if n := e.uploadsNow(id); n != 0 {
		t.Errorf("record %d's object written %d times, want none", id, n)
	}
}

// rangeHolds reads "user_id [lo, hi)", "user_id < hi" or "user_id >= lo"
// from reason and says whether user is in it.
func rangeHolds(reason string, user int64) bool {
	var lo, hi int64
	_, rest, ok := strings.Cut(reason, "user_id ")
	if !ok {
		return false
	}
	switch {
	case strings.HasPrefix(rest, "["):
		if _, err := fmt.Sscanf(rest, "[%d, %d)", &lo, &hi); err != nil {
			return false
		}
		return lo <= user && user < hi
	case strings.HasPrefix(rest, "< "):
		if _, err := fmt.Sscanf(rest, "< %d", &hi); err != nil {
			return false
		}
		return user < hi
	case strings.HasPrefix(rest, ">= "):
		if _, err := fmt.Sscanf(rest, ">= %d", &lo); err != nil {
			return false
		}
		return user >= lo
	}
	return false
}

// fundDatabase is the name of the run's plt_fund database.
func fundDatabase(t *testing.T, e *env) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(e.iso.DSNs.Sources["plt_fund"])
	if err != nil {
		t.Fatal(err)
	}
	return cfg.DBName
}

// uploadsNow counts the objects at record id's final prefix.
func (e *env) uploadsNow(id int64) int {
	e.t.Helper()
	objs, _, err := e.stack.GCS.ListObjectsWithOptions("reports", fakestorage.ListOptions{Prefix: fmt.Sprintf("reports/%d/", id)})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(objs)
}

// Deployments' messages side by side: reports the previous versions
// dispatched (a hash without parts; a stage-1 message at schema version 1,
// and one at version 2, without Chunks, byte for byte as those versions
// wrote them) drain on this version as one part each, while a report of
// this version runs in many parts at the same time. All end SUCCESS with
// the golden CSV. (The old reports' datasets are DEFLATE, which a version-2
// aggregator reads, the new one's S2: listen's TestChunkCodecFollowsTheReport.)
func TestMessageVersionsSideBySide(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{envFor: partsEnv(2)})
	ctx := context.Background()
	const typ = "withdraw_by_tag_with_payments"

	p, err := report.ParseParams([]byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	norm, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pubsub.NewClient(ctx, "e2e-project", emulators.PubSubOptions(e.stack.PubSubAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var olds []int64
	for _, v := range []int{1, 2} {
		// The previous version's dispatch: PROCESSING, a hash without
		// parts, its stage-1 message.
		old, err := e.client.Records.Insert(ctx, typ, []byte(seed.Params))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Records.MarkProcessing(ctx, old); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.State.Create(ctx, old, typ, norm); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf(`{"v":1,"recordId":%d,"reportType":%q,"stage":1,"sources":["plt_user.vs_user_tag_relation","plt_fund.vs_withdraw"],"params":%s}`, old, typ, norm)
		attrs := map[string]string{"schemaVersion": "1", "kind": "stage", "recordId": fmt.Sprint(old), "reportType": typ, "stage": "1"}
		if v == 2 {
			body = fmt.Sprintf(`{"v":2,"recordId":%d,"reportType":%q,"stage":1,"sources":["plt_user.vs_user_tag_relation","plt_fund.vs_withdraw"],"params":%s,"part":0,"parts":1}`, old, typ, norm)
			attrs["schemaVersion"], attrs["part"] = "2", "0/1"
		}
		if _, err := c.Publisher(topology.StageTopic(1)).Publish(ctx, &pubsub.Message{Data: []byte(body), Attributes: attrs}).Get(ctx); err != nil {
			t.Fatal(err)
		}
		olds = append(olds, old)
	}
	// This version's report, in many parts, meanwhile.
	cur := e.request(typ, seed.Params)

	want := string(seed.Golden(seed.GoldenWithdrawByTagWithPayments))
	for _, id := range append(olds, cur) {
		rec := e.wait(id, 90*time.Second)
		if rec.Status != record.Success {
			t.Errorf("record %d: %s %q, want SUCCESS", id, rec.Status, rec.FailReason)
			continue
		}
		got, err := e.client.Fetch(ctx, rec.FilePath)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("record %d: CSV differs from the golden (-want +got):\n%s", id, diff)
		}
		if !e.hashGone(id) {
			t.Errorf("record %d: hash left after SUCCESS", id)
		}
	}
	if n := dispatchedParts(t, e, cur); n < 4 {
		t.Errorf("this version's report ran in %d parts, want many", n)
	}
	for _, old := range olds {
		if n := countLogLines(t, e, "Aggregate", old, "part's segment written"); n != 0 {
			t.Errorf("the previous version's report %d wrote %d segments, want none (one part: one upload)", old, n)
		}
	}
	// The codec is the report's from dispatch to the last stage: the
	// stage-2 listener's datasets too (the aggregator passed it on).
	for _, proc := range []string{"ListenWithdraw", "ListenPayment"} {
		for _, id := range append(olds, cur) {
			want := "deflate"
			if id == cur {
				want = "s2"
			}
			if got := fetchedCodecs(t, e, proc, id); len(got) != 1 || got[want] == 0 {
				t.Errorf("record %d: %s fetched with codecs %v, want %s only", id, proc, got, want)
			}
		}
	}
}

// More parts than one compose request takes (32 sources): 90 more tagged
// users with a withdrawal and a payment each, PART_ROWS=1, so the object
// is composed through a tree of composes. The CSV is byte-identical to the
// reference query's, and no segment or intermediate composite is left.
func TestComposeTreePast32Segments(t *testing.T) {
	t.Parallel()
	const users = 90
	e := newEnv(t, options{envFor: func(e *env) map[string][]string {
		ctx := context.Background()
		user, err := serverenv.OpenDB(e.iso.DSNs.Sources["plt_user"])
		if err != nil {
			t.Fatal(err)
		}
		defer user.Close()
		fund, err := serverenv.OpenDB(e.iso.DSNs.Sources["plt_fund"])
		if err != nil {
			t.Fatal(err)
		}
		defer fund.Close()
		for i := range users {
			u := 5000 + i
			for _, q := range []struct {
				db  *sql.DB
				sql string
			}{
				{user, fmt.Sprintf("INSERT INTO vs_user_tag_relation (id, user_id, tag_id, created_at) VALUES (%d, %d, 3, '2025-01-01 00:00:00')", 900000+i, u)},
				{fund, fmt.Sprintf("INSERT INTO vs_withdraw (id, user_id, amount, currency, status, created_at) VALUES (%d, %d, %d.25, 'USD', 'SUCCESS', '2026-01-%02d 10:00:00')", 900000+i, u, i, 1+i%28)},
				{fund, fmt.Sprintf("INSERT INTO vs_payment (id, user_id, amount, currency, status, created_at) VALUES (%d, %d, 1.50, 'USD', 'SUCCESS', '2026-01-%02d 11:00:00')", 900000+i, u, 1+i%28)},
			} {
				if _, err := q.db.ExecContext(ctx, q.sql); err != nil {
					t.Fatalf("%s: %v", q.sql, err)
				}
			}
		}
		return map[string][]string{"draintriggers": {"PART_ROWS=1", "MAX_PARTS=500"}}
	}})
	ctx := context.Background()
	const typ = "withdraw_by_tag_with_payments"
	id := e.request(typ, seed.Params)
	rec := e.wait(id, 3*time.Minute)
	if rec.Status != record.Success {
		t.Fatalf("record %d: %s %q, want SUCCESS", id, rec.Status, rec.FailReason)
	}
	if n := dispatchedParts(t, e, id); n <= 32 {
		t.Fatalf("dispatched in %d parts, want more than 32 (a compose tree)", n)
	}
	p, err := report.ParseParams([]byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	db, err := serverenv.OpenDB(e.iso.DSNs.Sources["plt_fund"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, _ := report.Lookup(typ)
	refDB := report.RefDB{Names: map[string]string{"plt_user": databaseOf(t, e, "plt_user"), "plt_fund": databaseOf(t, e, "plt_fund")}}
	o := seed.Oracles(rep, refDB, p)[0]
	var want bytes.Buffer
	rows, err := o.WriteCSV(ctx, db, &want)
	if err != nil {
		t.Fatal(err)
	}
	if rec.RowCount != rows {
		t.Errorf("row_count %d, want %d", rec.RowCount, rows)
	}
	got, err := e.client.Fetch(ctx, rec.FilePath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.String(), string(got)); diff != "" {
		t.Errorf("CSV differs from the reference query (-want +got):\n%s", diff)
	}
	if left := segmentsLeft(t, e, id); len(left) > 0 {
		t.Errorf("segments or composites left after SUCCESS: %v", left)
	}
}

// databaseOf is the name of the run's database for source database name.
func databaseOf(t *testing.T, e *env, name string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(e.iso.DSNs.Sources[name])
	if err != nil {
		t.Fatal(err)
	}
	return cfg.DBName
}
