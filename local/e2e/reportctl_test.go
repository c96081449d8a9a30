package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/local/reportctl"
	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/signing"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

var (
	reportctlOnce sync.Once
	reportctlBin  string
	reportctlErr  error
)

// buildReportctl compiles the command line once per test binary.
func buildReportctl(t *testing.T) string {
	t.Helper()
	reportctlOnce.Do(func() {
		reportctlBin = filepath.Join(binDir, "reportctl")
		out, err := exec.Command("go", "build", "-C", "../..", "-o", reportctlBin, "./local/cmd/reportctl").CombinedOutput()
		if err != nil {
			reportctlErr = fmt.Errorf("go build reportctl: %w\n%s", err, out)
		}
	})
	if reportctlErr != nil {
		t.Fatal(reportctlErr)
	}
	return reportctlBin
}

// ctlResult is one run of the binary.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// ctlProject is the e2e stacks' GOOGLE_CLOUD_PROJECT.
const ctlProject = "e2e-project"

// ctlTTL is the SIGNED_URL_TTL reportctl signs links with, other than the
// functions' (signedTTL), so the link's lifetime is the tool's.
const ctlTTL = 45 * time.Minute

// ctlEnv is the environment an operator would set for e's stack: the
// functions' variables, and where the emulators listen.
func (e *env) ctlEnv(extra ...string) []string {
	vars := append(e.iso.Env(),
		"STORAGE_EMULATOR_HOST="+strings.TrimPrefix(e.stack.StorageURL, "http://"),
		"PUBSUB_EMULATOR_HOST="+e.stack.PubSubAddr,
		"GOOGLE_CLOUD_PROJECT="+ctlProject)
	return append(vars, extra...)
}

// ctl runs reportctl against e's stack; extra variables override.
func (e *env) ctl(extra []string, args ...string) ctlResult {
	e.t.Helper()
	cmd := exec.Command(buildReportctl(e.t), args...)
	cmd.Env = e.ctlEnv(extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("reportctl %q: %v", args, err)
	}
	return ctlResult{out.String(), errb.String(), code}
}

// ctlWant runs reportctl and fails the test unless it exits with code.
func (e *env) ctlWant(code int, args ...string) ctlResult {
	e.t.Helper()
	r := e.ctl(nil, args...)
	if r.code != code {
		e.t.Fatalf("reportctl %q exited %d, want %d\nstdout:\n%s\nstderr:\n%s", args, r.code, code, r.stdout, r.stderr)
	}
	return r
}

// ctlJSON runs reportctl -json and decodes its stdout into v.
func ctlJSON[T any](e *env, code int, args ...string) T {
	e.t.Helper()
	r := e.ctlWant(code, append(args, "-json")...)
	var v T
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		e.t.Fatalf("reportctl %q -json: %v\n%s", args, err, r.stdout)
	}
	if dec.More() {
		e.t.Fatalf("reportctl %q -json printed more than one value:\n%s", args, r.stdout)
	}
	return v
}

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Every command of the operator's tool against a running stack whose
// stage-2 listener cannot query (its database has no tables), so that
// withdraw_by_tag succeeds and withdraw_by_tag_with_payments stays
// PROCESSING at stage 2: the relay retries it only after 10 minutes.
func TestReportctl(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{backoff: 10 * time.Minute, envFor: func(e *env) map[string][]string {
		return map[string][]string{"ListenPayment": {"DSN_PLT_FUND=" + e.emptyDatabase("nopay")}}
	}})
	ctx := context.Background()
	golden := seed.Golden(seed.GoldenWithdrawByTag)
	goldenRows := int64(bytes.Count(golden, []byte("\n")) - 1)
	dir := t.TempDir()

	// request: waits, saves the CSV through -out, prints the final record.
	csvPath := filepath.Join(dir, "ok.csv")
	ok := ctlJSON[reportctl.Record](e, 0, "request", "-type", "withdraw_by_tag", "-params", seed.Params, "-out", csvPath)
	if ok.Status != "SUCCESS" || ok.RowCount == nil || *ok.RowCount != goldenRows || ok.Out != csvPath ||
		ok.FilePath != fmt.Sprintf("gs://reports/reports/%d/withdraw_by_tag.csv", ok.ID) || ok.Progress != nil {
		t.Errorf("request -json = %+v, want SUCCESS with %d rows written to %s", ok, goldenRows, csvPath)
	}
	if got, err := os.ReadFile(csvPath); err != nil || !bytes.Equal(got, golden) {
		t.Errorf("request -out wrote %q (%v), want the golden CSV", got, err)
	}
	var params map[string]any
	if err := json.Unmarshal(ok.Params, &params); err != nil || params["tagIds"] == nil {
		t.Errorf("params %s is not the request's object: %v", ok.Params, err)
	}
	for _, ts := range []string{ok.CreatedAt, ok.UpdatedAt} {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
			t.Errorf("time %q is not RFC 3339 UTC: %v", ts, err)
		}
	}

	// request of a report that stalls at stage 2: the live progress line,
	// read as it is printed.
	req := exec.Command(buildReportctl(t), "request", "-type", "withdraw_by_tag_with_payments", "-params", seed.Params, "-json")
	req.Env = e.ctlEnv()
	var reqOut bytes.Buffer
	req.Stdout = &reqOut
	stderr, err := req.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { req.Process.Kill() })
	var id int64
	var progress []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		progress = append(progress, line)
		if m := regexp.MustCompile(`^record (\d+) requested`).FindStringSubmatch(line); m != nil {
			id, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if strings.Contains(line, "stage 2/2: 2/3 listeners done") {
			break
		}
	}
	if id == 0 || !strings.Contains(progress[len(progress)-1], "stage 2/2: 2/3 listeners done") {
		t.Fatalf("request's progress never reached stage 2 (scan: %v):\n%s", sc.Err(), strings.Join(progress, "\n"))
	}
	rowsLine := regexp.MustCompile(`(\d+) rows so far`).FindStringSubmatch(progress[len(progress)-1])
	if rowsLine == nil || !regexp.MustCompile(`\s\d+(\.\d+)?(ms|s|m\d)`).MatchString(progress[len(progress)-1]) {
		t.Errorf("progress line %q lacks rows so far or the elapsed time", progress[len(progress)-1])
	}
	// Keep draining stderr so the process never blocks on it.
	var drained bytes.Buffer
	drainDone := make(chan struct{})
	go func() { drained.ReadFrom(stderr); close(drainDone) }()

	// Rows fetched by stage 1, counted independently in the sources.
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
	var tagRows, withdrawRows int64
	if err := user.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT DISTINCT user_id, tag_id FROM vs_user_tag_relation WHERE tag_id IN (3, 10)) t`).Scan(&tagRows); err != nil {
		t.Fatal(err)
	}
	if err := fund.QueryRowContext(ctx, `SELECT COUNT(*) FROM vs_withdraw WHERE created_at >= '2026-01-01' AND created_at < '2026-02-01'`).Scan(&withdrawRows); err != nil {
		t.Fatal(err)
	}
	if rowsLine != nil && rowsLine[1] != strconv.FormatInt(tagRows+withdrawRows, 10) {
		t.Errorf("progress says %s rows so far, the sources hold %d + %d", rowsLine[1], tagRows, withdrawRows)
	}

	// status -json of the running report, once the stage-2 listener has
	// recorded its error.
	var running reportctl.Record
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		running = ctlJSON[reportctl.Record](e, 0, "status", strconv.FormatInt(id, 10))
		if p := running.Progress; p != nil && len(p.Missing) == 1 && p.Missing[0].LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the stage-2 listener's error: %+v", running.Progress)
		}
	}
	wantProgress := &client.Progress{
		Stage: 2, Stages: 2, DoneCount: 2, Expected: 3, Rows: tagRows + withdrawRows, Parts: 1,
		Done: []client.SourceState{
			{Stage: 1, Source: "plt_user.vs_user_tag_relation", Rows: tagRows},
			{Stage: 1, Source: "plt_fund.vs_withdraw", Rows: withdrawRows},
		},
		Missing: []client.SourceState{{Stage: 2, Source: "plt_fund.vs_payment", LastError: running.Progress.Missing[0].LastError}},
	}
	if running.Status != "PROCESSING" || running.ID != id || running.FilePath != "" || running.RowCount != nil {
		t.Errorf("status -json of the running report = %+v", running)
	}
	if diff := cmp.Diff(wantProgress, running.Progress, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".TTL" }, cmp.Ignore())); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if !strings.Contains(running.Progress.Missing[0].LastError, "vs_payment' doesn't exist") {
		t.Errorf("missing listener's last error %q does not name the missing table", running.Progress.Missing[0].LastError)
	}
	st := e.ctlWant(0, "status", strconv.FormatInt(id, 10))
	for _, want := range []string{
		fmt.Sprintf("record %d", id), "withdraw_by_tag_with_payments", "PROCESSING", "stage", "2 of 2",
		fmt.Sprintf("2 of 3 done, %d rows so far", tagRows+withdrawRows),
		fmt.Sprintf("plt_user.vs_user_tag_relation (stage 1): %d rows", tagRows),
		"missing", "plt_fund.vs_payment (stage 2), last error:",
	} {
		if !strings.Contains(st.stdout, want) {
			t.Errorf("status does not say %q:\n%s", want, st.stdout)
		}
	}
	t.Logf("reportctl status %d (a running report):\n%s", id, st.stdout)

	// list: newest first, the running one with its progress.
	all := ctlJSON[[]reportctl.Record](e, 0, "list")
	if ids := recordIDs(all); !cmp.Equal(ids, []int64{id, ok.ID}) {
		t.Errorf("list -json IDs = %v, want [%d %d]", ids, id, ok.ID)
	} else if all[0].Progress == nil || all[0].Progress.DoneCount != 2 || all[1].Progress != nil || all[1].Status != "SUCCESS" {
		t.Errorf("list -json = %+v", all)
	}
	if ids := recordIDs(ctlJSON[[]reportctl.Record](e, 0, "list", "-status", "success")); !cmp.Equal(ids, []int64{ok.ID}) {
		t.Errorf("list -status success = %v, want [%d]", ids, ok.ID)
	}
	if ids := recordIDs(ctlJSON[[]reportctl.Record](e, 0, "list", "-limit", "1")); !cmp.Equal(ids, []int64{id}) {
		t.Errorf("list -limit 1 = %v, want [%d]", ids, id)
	}
	if got := ctlJSON[[]reportctl.Record](e, 0, "list", "-status", "FAILED"); len(got) != 0 {
		t.Errorf("list -status FAILED = %v, want []", got)
	}
	ls := e.ctlWant(0, "list")
	if lines := strings.Split(strings.TrimSpace(ls.stdout), "\n"); len(lines) != 3 || !strings.Contains(lines[1], "PROCESSING") || !strings.Contains(lines[1], "stage 2/2: 2/3 listeners done, "+strconv.FormatInt(tagRows+withdrawRows, 10)+" rows so far") || !strings.Contains(lines[2], "SUCCESS") {
		t.Errorf("list:\n%s", ls.stdout)
	}
	t.Logf("reportctl list (one running, one done):\n%s", ls.stdout)

	// An unreachable Redis while reading a running report's progress.
	down := closedPort(t)
	r := e.ctl([]string{"REDIS_ADDR=" + down}, "status", strconv.FormatInt(id, 10))
	wantUnreachable(t, r, "Redis", down+" (REDIS_ADDR)")

	// fetch refuses a report with no file yet; cancel ends it and
	// announces the end on report-completed (and DrainTriggers forwards it).
	ev := listen(t, e)
	e.ctlWant(1, "fetch", strconv.FormatInt(id, 10))
	c := e.ctlWant(0, "cancel", strconv.FormatInt(id, 10))
	if !strings.Contains(c.stderr, "cancelled") {
		t.Errorf("cancel said %q", c.stderr)
	}
	if err := req.Wait(); err == nil || req.ProcessState.ExitCode() != 1 {
		t.Errorf("request of the cancelled report exited %v, want 1", err)
	}
	<-drainDone
	var final reportctl.Record
	if err := json.Unmarshal(reqOut.Bytes(), &final); err != nil || final.Status != "FAILED" || final.FailReason != reportctl.CancelReason {
		t.Errorf("request -json of the cancelled report printed %s (%v), want FAILED %q", reqOut.Bytes(), err, reportctl.CancelReason)
	}
	if !e.hashGone(id) {
		t.Errorf("hash of cancelled record %d still in Redis", id)
	}
	cancelled, err := e.client.Records.Get(ctx, id)
	if err != nil || cancelled.Status != record.Failed || cancelled.FailReason != reportctl.CancelReason {
		t.Errorf("cancelled record = %+v, %v", cancelled, err)
	}
	if r := e.ctlWant(1, "status", strconv.FormatInt(id, 10)); !strings.Contains(r.stdout, "reason") || !strings.Contains(r.stdout, reportctl.CancelReason) {
		t.Errorf("status of the cancelled record:\n%s", r.stdout)
	}
	// The event is the contract's FAILED body built from the row, with
	// the operator's reason; expect checks it on Pub/Sub and RabbitMQ.
	ev.expect(e, cancelled, "")

	// Pub/Sub unreachable while cancelling a PENDING record nobody
	// triggered: it ends FAILED, exit 3 names Pub/Sub and says how to have
	// it announced; publishing its ID does, through DrainTriggers.
	pending, err := e.client.Records.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	pid := strconv.FormatInt(pending, 10)
	r = e.ctl([]string{"PUBSUB_EMULATOR_HOST=" + down}, "cancel", pid)
	wantUnreachable(t, r, "Pub/Sub", down+" (PUBSUB_EMULATOR_HOST)")
	if !strings.Contains(r.stderr, "reportctl publish "+pid) {
		t.Errorf("cancel without Pub/Sub does not say how to announce the record:\n%s", r.stderr)
	}
	prec, err := e.client.Records.Get(ctx, pending)
	if err != nil || prec.Status != record.Failed || prec.FailReason != reportctl.CancelReason {
		t.Fatalf("record cancelled without Pub/Sub = %+v, %v; want FAILED %q", prec, err, reportctl.CancelReason)
	}
	e.ctlWant(0, "publish", pid)
	ev.expect(e, prec, "")

	// Only PENDING or PROCESSING records are cancelled; only FAILED retried.
	for _, args := range [][]string{
		{"cancel", strconv.FormatInt(id, 10)},
		{"cancel", strconv.FormatInt(ok.ID, 10)},
		{"retry", strconv.FormatInt(ok.ID, 10)},
	} {
		if r := e.ctlWant(1, args...); !strings.Contains(r.stderr, "only") {
			t.Errorf("reportctl %q: %q does not say which records it takes", args, r.stderr)
		}
	}

	// retry: a new record, requested, the old one untouched.
	retried := ctlJSON[reportctl.Record](e, 0, "retry", strconv.FormatInt(id, 10))
	if retried.RetryOf != id || retried.ID <= id || retried.ReportType != "withdraw_by_tag_with_payments" || string(retried.Params) != string(running.Params) {
		t.Errorf("retry -json = %+v, want a new record repeating %d", retried, id)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got := ctlJSON[reportctl.Record](e, 0, "status", strconv.FormatInt(retried.ID, 10))
		if got.Progress != nil && got.Progress.DoneCount == 2 {
			break // published and dispatched: it runs like the first
		}
		if time.Now().After(deadline) {
			t.Fatalf("retried record %d never ran: %+v", retried.ID, got)
		}
	}
	if again, err := e.client.Records.Get(ctx, id); err != nil || !cmp.Equal(again, cancelled) {
		t.Errorf("retry changed the old record: %+v -> %+v (%v)", cancelled, again, err)
	}
	e.ctlWant(0, "cancel", strconv.FormatInt(retried.ID, 10))
	text := e.ctlWant(0, "retry", strconv.FormatInt(id, 10))
	if n, err := strconv.ParseInt(strings.TrimSpace(text.stdout), 10, 64); err != nil || n <= retried.ID {
		t.Errorf("retry printed %q, want the new record's ID", text.stdout)
	} else {
		e.ctlWant(0, "cancel", strconv.FormatInt(n, 10))
	}

	// fetch: to a file, to stdout, as JSON (CSV only through -out).
	okID := strconv.FormatInt(ok.ID, 10)
	if r := e.ctlWant(0, "fetch", okID); r.stdout != string(golden) {
		t.Errorf("fetch to stdout = %q, want the golden CSV", r.stdout)
	}
	fetched := ctlJSON[reportctl.Fetched](e, 0, "fetch", okID, "-out", filepath.Join(dir, "f.csv"))
	if want := (reportctl.Fetched{ID: ok.ID, FilePath: ok.FilePath, Out: filepath.Join(dir, "f.csv"), Bytes: len(golden), RowCount: goldenRows}); fetched != want {
		t.Errorf("fetch -json = %+v, want %+v", fetched, want)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "f.csv")); err != nil || !bytes.Equal(got, golden) {
		t.Errorf("fetch -out wrote %q (%v)", got, err)
	}
	e.ctlWant(2, "fetch", okID, "-json")

	// fetch -url: a V4 link signed with the key the operator was given,
	// valid for SIGNED_URL_TTL, that fetches the CSV from the emulator.
	key, keyFile, err := signing.NewSigningKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	signEnv := []string{"SIGNED_URL_TTL=" + ctlTTL.String(), "SIGNED_URL_KEY_FILE=" + keyFile, "SIGNED_URL_ACCESS_ID=" + signing.SigningAccessID}
	u := e.ctl(signEnv, "fetch", okID, "-url")
	if u.code != 0 {
		t.Fatalf("fetch -url exited %d:\n%s", u.code, u.stderr)
	}
	link := strings.TrimSpace(u.stdout)
	signed, err := signing.VerifySignedURL(link, &key.PublicKey)
	if err != nil {
		t.Fatalf("fetch -url printed %q: %v", u.stdout, err)
	}
	if signed.Expires != ctlTTL || signed.AccessID != signing.SigningAccessID {
		t.Errorf("signed link: X-Goog-Expires %s as %s, want SIGNED_URL_TTL %s as %s", signed.Expires, signed.AccessID, ctlTTL, signing.SigningAccessID)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, golden) {
		t.Errorf("GET the signed link: %s %q (%v), want the golden CSV", resp.Status, body, err)
	}
	var uj reportctl.Fetched
	if err := json.Unmarshal([]byte(e.ctl(signEnv, "fetch", okID, "-url", "-json").stdout), &uj); err != nil {
		t.Fatalf("fetch -url -json: %v", err)
	}
	ujSigned, err := signing.VerifySignedURL(uj.URL, &key.PublicKey)
	if err != nil {
		t.Fatalf("fetch -url -json link %q: %v", uj.URL, err)
	}
	wantExpires := ujSigned.Date.Add(ctlTTL).UTC().Format(reportctl.TimeFormat)
	if want := (reportctl.Fetched{ID: ok.ID, FilePath: ok.FilePath, RowCount: goldenRows, URL: uj.URL, Expires: wantExpires}); uj != want {
		t.Errorf("fetch -url -json = %+v, want %+v", uj, want)
	}
	// Only a SUCCESS has a link; without SIGNED_URL_TTL there is none.
	if r := e.ctl(signEnv, "fetch", strconv.FormatInt(id, 10), "-url"); r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "FAILED") {
		t.Errorf("fetch -url of a FAILED record: exit %d, stdout %q, stderr %q; want 1 and no link", r.code, r.stdout, r.stderr)
	}
	if r := e.ctlWant(2, "fetch", okID, "-url"); !strings.Contains(r.stderr, "SIGNED_URL_TTL") {
		t.Errorf("fetch -url without SIGNED_URL_TTL said %q", r.stderr)
	}
	r = e.ctl([]string{"STORAGE_EMULATOR_HOST=" + down}, "fetch", okID)
	wantUnreachable(t, r, "Cloud Storage", down)

	// Not found: exit 4.
	for _, cmd := range []string{"status", "fetch", "retry", "cancel"} {
		if r := e.ctlWant(4, cmd, "987654321"); !strings.Contains(r.stderr, "987654321") {
			t.Errorf("%s of a missing record said %q", cmd, r.stderr)
		}
	}

	// Usage: exit 2.
	for _, args := range [][]string{{}, {"frobnicate"}, {"status"}, {"status", "x"}, {"list", "-status", "DONE"}, {"request"}, {"request", "-params", "{"}} {
		e.ctlWant(2, args...)
	}

	// parked: two bad triggers, then a fix for one and its requeue.
	const missing = 99999999
	e.ctlWant(0, "publish", "hello")
	if p := ctlJSON[reportctl.Published](e, 0, "publish", strconv.Itoa(missing)); p.Queue != e.iso.Queues()["TRIGGER_QUEUE"] {
		t.Errorf("publish -json = %+v", p)
	}
	var parked []client.Parked
	for deadline := time.Now().Add(30 * time.Second); len(parked) < 2; time.Sleep(100 * time.Millisecond) {
		parked = parkedIn(ctlJSON[[]client.Parked](e, 0, "parked"), client.InRabbitMQ)
		if time.Now().After(deadline) {
			t.Fatalf("parked = %+v, want 2 triggers", parked)
		}
	}
	reasons := map[string]string{}
	keys := map[string]string{}
	for i, p := range parked {
		reasons[p.Body], keys[p.Body] = p.Reason, p.Requeue
		if p.Position != i+1 || !strings.HasPrefix(p.Requeue, client.InRabbitMQ+":") {
			t.Errorf("parked[%d]: position %d, requeue %q", i, p.Position, p.Requeue)
		}
	}
	for body, want := range map[string]string{"hello": "not a trigger", strconv.Itoa(missing): "no record 99999999"} {
		if !strings.Contains(reasons[body], want) {
			t.Errorf("parked %q: reason %q, want it to mention %q", body, reasons[body], want)
		}
	}
	// Listing leaves them in place.
	if again := parkedIn(ctlJSON[[]client.Parked](e, 0, "parked"), client.InRabbitMQ); len(again) != 2 {
		t.Errorf("second listing = %+v, want the same 2", again)
	}
	pt := e.ctlWant(0, "parked")
	if !strings.Contains(pt.stdout, `"hello"`) || !strings.Contains(pt.stdout, "not a trigger") {
		t.Errorf("parked:\n%s", pt.stdout)
	}
	// The fix: the record now exists.
	db, err := serverenv.OpenDB(e.iso.DSNs.Record)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO file_download_record (id, report_type, params) VALUES (?, 'withdraw_by_tag', ?)`, missing, seed.Params); err != nil {
		t.Fatal(err)
	}
	rq := ctlJSON[reportctl.Requeued](e, 0, "parked", "-requeue", keys[strconv.Itoa(missing)])
	if rq.Body != strconv.Itoa(missing) || rq.Queue != e.iso.Queues()["TRIGGER_QUEUE"] {
		t.Errorf("parked -requeue -json = %+v", rq)
	}
	if rec := e.wait(missing, 60*time.Second); rec.Status != record.Success || rec.RowCount != goldenRows {
		t.Errorf("requeued trigger's record ended %s %q, want SUCCESS", rec.Status, rec.FailReason)
	}
	if left := parkedIn(ctlJSON[[]client.Parked](e, 0, "parked"), client.InRabbitMQ); len(left) != 1 || left[0].Body != "hello" {
		t.Errorf("parked after requeue = %+v, want only hello", left)
	}
	e.ctlWant(4, "parked", "-requeue", keys[strconv.Itoa(missing)]) // moved already
	r = e.ctl([]string{"AMQP_URL=amqp://guest:guest@" + down + "/"}, "parked")
	wantUnreachable(t, r, "RabbitMQ", down)
	r = e.ctl([]string{"RECORD_DSN=root@tcp(" + down + ")/plt_report"}, "list")
	wantUnreachable(t, r, "MariaDB", down+"/plt_report (RECORD_DSN)")

	// parked on Pub/Sub: the aggregator parks a "done" message of a record
	// that does not exist; listed with its reason and where it came from,
	// left in place; after a fix (the record now exists, PROCESSING, with
	// no state in Redis) it is requeued to report-aggregate and the
	// aggregator consumes it: it ends the record FAILED, state lost.
	const orphan = 99999998
	ps, err := pubsub.NewClient(ctx, ctlProject, emulators.PubSubOptions(e.stack.PubSubAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	done := message.Done{V: message.SchemaVersion, RecordID: orphan, ReportType: "withdraw_by_tag", Stage: 1, Source: "plt_fund.vs_withdraw"}
	doneBody := fmt.Sprintf(`{"v":1,"recordId":%d,"reportType":"withdraw_by_tag","stage":1,"source":"plt_fund.vs_withdraw"}`, orphan)
	if _, err := ps.Publisher(topology.TopicAggregate).Publish(ctx, &pubsub.Message{Data: []byte(doneBody), Attributes: done.Attributes()}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	var msgs []client.Parked
	for deadline := time.Now().Add(30 * time.Second); len(msgs) == 0; time.Sleep(100 * time.Millisecond) {
		msgs = parkedIn(ctlJSON[[]client.Parked](e, 0, "parked"), client.InPubSub)
		if time.Now().After(deadline) {
			t.Fatal("the aggregator's parked message never showed in `reportctl parked`")
		}
	}
	pm := msgs[0]
	wantPM := client.Parked{
		Where: client.InPubSub, Requeue: "pubsub:" + pm.MessageID, Body: doneBody, Reason: state.AggregatorName + ": no record 99999998",
		MessageID: pm.MessageID, Timestamp: pm.Timestamp, Handler: state.AggregatorName, Subscription: topology.SubAggregate, RecordID: orphan,
	}
	if diff := cmp.Diff([]client.Parked{wantPM}, msgs); diff != "" || pm.MessageID == "" || pm.Timestamp.IsZero() {
		t.Errorf("parked messages (-want +got):\n%s", diff)
	}
	// Listing gave it back: it is listed again, and in the table.
	if again := parkedIn(ctlJSON[[]client.Parked](e, 0, "parked"), client.InPubSub); len(again) != 1 || again[0].MessageID != pm.MessageID {
		t.Errorf("second listing of the parked messages = %+v, want %s again", again, pm.MessageID)
	}
	pt = e.ctlWant(0, "parked")
	for _, want := range []string{"pubsub:" + pm.MessageID, "report-parked-hold", "99999998", "aggregate", "no record 99999998", `"hello"`} {
		if !strings.Contains(pt.stdout, want) {
			t.Errorf("parked does not say %q:\n%s", want, pt.stdout)
		}
	}
	t.Logf("reportctl parked (a trigger and a message):\n%s", pt.stdout)
	e.ctlWant(4, "parked", "-requeue", "pubsub:no-such-message")
	if _, err := db.ExecContext(ctx, `INSERT INTO file_download_record (id, report_type, params, status) VALUES (?, 'withdraw_by_tag', ?, ?)`, orphan, seed.Params, int(record.Processing)); err != nil {
		t.Fatal(err)
	}
	prq := ctlJSON[reportctl.Requeued](e, 0, "parked", "-requeue", "pubsub:"+pm.MessageID)
	if prq.Queue != topology.TopicAggregate || prq.MessageID != pm.MessageID || prq.Body != doneBody {
		t.Errorf("parked -requeue pubsub:%s -json = %+v, want it requeued to %s", pm.MessageID, prq, topology.TopicAggregate)
	}
	if rec := e.wait(orphan, 60*time.Second); rec.Status != record.Failed || !strings.Contains(rec.FailReason, "gone from Redis") {
		t.Errorf("requeued message's record ended %s %q, want FAILED by the aggregator (state gone)", rec.Status, rec.FailReason)
	}
	if left := parkedIn(ctlJSON[[]client.Parked](e, 0, "parked"), client.InPubSub); len(left) != 0 {
		t.Errorf("parked messages after the requeue = %+v, want none", left)
	}
	r = e.ctl([]string{"PUBSUB_EMULATOR_HOST=" + down}, "parked")
	wantUnreachable(t, r, "Pub/Sub", down+" (PUBSUB_EMULATOR_HOST)")
}

// parkedIn keeps the parked entries of one place (client.InRabbitMQ or
// client.InPubSub).
func parkedIn(ps []client.Parked, where string) []client.Parked {
	var out []client.Parked
	for _, p := range ps {
		if p.Where == where {
			out = append(out, p)
		}
	}
	return out
}

func recordIDs(rs []reportctl.Record) []int64 {
	ids := []int64{}
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

// wantUnreachable checks exit 3 and a message naming the server, where it
// was looked for, and how to start the local stack.
func wantUnreachable(t *testing.T, r ctlResult, server, where string) {
	t.Helper()
	if r.code != reportctl.ExitUnreachable {
		t.Errorf("exit %d with %s down, want 3\n%s", r.code, server, r.stderr)
	}
	for _, want := range []string{"cannot reach " + server, where, "make up"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("with %s down, the message does not say %q:\n%s", server, want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "guest:guest") {
		t.Errorf("message shows credentials: %s", r.stderr)
	}
}

// TestReportctlStatusInManyParts: a report split into many parts whose
// stage-2 listener fails in every part (its table is missing) stops after
// stage 1. status shows the parts done of P per stage, which parts stage 2
// still misses, and the listener's last error, in text and in -json.
func TestReportctlStatusInManyParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{backoff: 10 * time.Minute, envFor: func(e *env) map[string][]string {
		return map[string][]string{
			"draintriggers": {"PART_ROWS=2", "MAX_PARTS=200"},
			"ListenPayment": {"DSN_PLT_FUND=" + e.emptyDatabase("nopay")},
		}
	}})
	id := e.request("withdraw_by_tag_with_payments", seed.Params)
	var got reportctl.Record
	waitFor(t, 90*time.Second, "stage 1 done in every part and stage 2's error recorded", func() bool {
		got = ctlJSON[reportctl.Record](e, 0, "status", strconv.FormatInt(id, 10))
		p := got.Progress
		return p != nil && p.Parts > 1 && len(p.PartsDone) == 2 && p.PartsDone[0] == p.Parts &&
			len(p.Missing) == 1 && p.Missing[0].LastError != ""
	})
	parts := dispatchedParts(t, e, id)
	if parts < 4 {
		t.Fatalf("dispatched in %d parts, want many (PART_ROWS=2)", parts)
	}
	// Parts whose users hold no requested tag skip stage 2 and write their
	// (empty) segment at once: they count as done in every stage.
	written := got.Progress.Segments
	if written >= parts {
		t.Fatalf("%d of %d segments written while stage 2 fails everywhere", written, parts)
	}
	missing := got.Progress.PartsMissing
	if len(missing) != 2 || len(missing[0]) != 0 || len(missing[1]) != min(parts-written, client.MaxPartsListed) ||
		!slices.IsSorted(missing[1]) || len(slices.Compact(slices.Clone(missing[1]))) != len(missing[1]) {
		t.Errorf("partsMissing = %v, want none in stage 1 and the first %d of %d parts in stage 2", missing, client.MaxPartsListed, parts-written)
	}
	want := &client.Progress{
		Stage: 2, Stages: 2, DoneCount: got.Progress.DoneCount, Expected: int64(3 * parts),
		Parts: parts, PartsDone: []int{parts, written}, PartsMissing: missing, Segments: written,
		Missing: []client.SourceState{{Stage: 2, Source: "plt_fund.vs_payment", LastError: got.Progress.Missing[0].LastError}},
	}
	if d := got.Progress.DoneCount; d < int64(2*parts) || d >= int64(3*parts) {
		t.Errorf("listenersDone = %d, want every stage-1 listener of %d parts and not all of stage 2", d, parts)
	}
	if got.Status != "PROCESSING" || got.ID != id {
		t.Errorf("status -json = %+v, want PROCESSING", got)
	}
	if diff := cmp.Diff(want, got.Progress, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".TTL" }, cmp.Ignore())); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if !strings.Contains(got.Progress.Missing[0].LastError, "vs_payment' doesn't exist") {
		t.Errorf("last error %q does not name the missing table", got.Progress.Missing[0].LastError)
	}
	st := e.ctlWant(0, "status", strconv.FormatInt(id, 10))
	var names []string
	for _, i := range missing[1][:min(len(missing[1]), 3)] {
		names = append(names, strconv.Itoa(i+1))
	}
	for _, w := range []string{
		"PROCESSING", "2 of 2", fmt.Sprintf("%d (key ranges", parts),
		fmt.Sprintf("%d of %d parts done\n", parts, parts),
		fmt.Sprintf("%d of %d parts done, missing parts %s", written, parts, strings.Join(names, ", ")),
		fmt.Sprintf("%d of %d written", written, parts),
		"plt_fund.vs_payment (stage 2), last error:", "doesn't exist",
	} {
		if !strings.Contains(st.stdout, w) {
			t.Errorf("status does not say %q:\n%s", w, st.stdout)
		}
	}
	if more := parts - written - client.MaxPartsListed; more > 0 && !strings.Contains(st.stdout, fmt.Sprintf("and %d more", more)) {
		t.Errorf("status does not count the parts it does not list:\n%s", st.stdout)
	}
	t.Logf("reportctl status %d (%d parts, stage 2 failing):\n%s", id, parts, st.stdout)
}
