package bench

import (
	"encoding/json"
	"math"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/zclconf/go-cty/cty"

	"github.com/fanoutexport/fanoutexport/local/relay"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

var approx = cmpopts.EquateApprox(1e-9, 1e-12)

// The price list is complete, dated and sourced, and says it must be checked.
func TestPricesFile(t *testing.T) {
	t.Parallel()
	p, err := LoadPrices()
	if err != nil {
		t.Fatal(err)
	}
	if p.Check == "" || !strings.Contains(p.Source, "cloud.google.com") {
		t.Errorf("prices.json: source %q, check %q: want the pages and a note to check them", p.Source, p.Check)
	}
	if p.PubSub.MinBytesPerMessage != pubsubMinBytes {
		t.Errorf("prices.json pubsub.minBytesPerMessage %d, the usage counts %d", p.PubSub.MinBytesPerMessage, pubsubMinBytes)
	}
	for _, bad := range []string{
		`{}`,
		strings.Replace(string(pricesJSON), `"vcpuSecond": 0.000024`, `"vcpuSecond": 0`, 1),
		strings.Replace(string(pricesJSON), `"M3": 0.023`, `"M9": 0.023`, 1),
		strings.Replace(string(pricesJSON), `"source"`, `"sauce"`, 1),
	} {
		if _, err := parsePrices([]byte(bad)); err == nil {
			t.Errorf("parsePrices accepted %.80q...", bad)
		}
	}
}

// testPrices are round prices, so expected costs are easy to state.
func testPrices() Prices {
	var p Prices
	p.CloudRun.VCPUSecond, p.CloudRun.GiBSecond, p.CloudRun.PerMillionRequest = 0.01, 0.001, 1
	p.CloudRun.IdleVCPUSecond, p.CloudRun.IdleGiBSecond = 0.001, 0.0001
	p.PubSub.PerTiB, p.PubSub.MinBytesPerMessage = 1<<40, 1000 // $1 a byte
	p.Memorystore.BasicGBHour = map[string]float64{"M1": 1, "M2": 0.5, "M3": 0.25, "M4": 0.125, "M5": 0.0625}
	p.Memorystore.StandardGBHour = map[string]float64{"M1": 2, "M2": 1, "M3": 0.5, "M4": 0.25, "M5": 0.125}
	p.Storage.GBMonth, p.Storage.ClassAPer1000, p.Storage.ClassBPer1000 = 1, 1000, 100
	p.Scheduler.JobMonth = 3
	return p
}

func TestReportCost(t *testing.T) {
	t.Parallel()
	p := testPrices()
	fns := map[string]FnUsage{
		"A": {Requests: 2, VCPUSeconds: 10, GiBSeconds: 100},
		"B": {Requests: 1_000_000, VCPUSeconds: 0, GiBSeconds: 0},
	}
	got := p.Report(fns, PubSubUsage{BillableBytes: 3000}, GCSOps{Uploads: 1, Composes: 2, Deletes: 50, Lists: 1, Reads: 3})
	want := ReportCost{
		FunctionsUSD: 10*0.01 + 100*0.001 + 2e-6 + 1,
		PubSubUSD:    3000,
		StorageUSD:   4*1 + 3*0.1, // class A: upload, 2 composes, list; deletes free
	}
	want.TotalUSD = want.FunctionsUSD + want.PubSubUSD + want.StorageUSD
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("Report (-want +got):\n%s", diff)
	}
}

func TestRedisMonth(t *testing.T) {
	t.Parallel()
	p := testPrices()
	for _, tc := range []struct {
		tier string
		gb   int
		want float64
	}{
		{"BASIC", 1, 1 * 1 * 730},
		{"BASIC", 4, 1 * 4 * 730},
		{"BASIC", 5, 0.5 * 5 * 730},
		{"STANDARD_HA", 5, 1 * 5 * 730},
		{"STANDARD_HA", 36, 0.25 * 36 * 730},
		{"STANDARD_HA", 101, 0.125 * 101 * 730},
	} {
		got, err := p.RedisMonth(tc.tier, tc.gb)
		if err != nil || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("RedisMonth(%s, %d) = %v, %v; want %v", tc.tier, tc.gb, got, err, tc.want)
		}
	}
	if _, err := p.RedisMonth("PREMIUM", 1); err == nil {
		t.Error("RedisMonth accepted an unknown tier")
	}
}

func TestRunsPerHour(t *testing.T) {
	t.Parallel()
	for cron, want := range map[string]float64{"* * * * *": 60, "*/5 * * * *": 12, "*/7 * * * *": 9, "0 * * * *": 1, "0,30 * * * *": 2} {
		if got, err := runsPerHour(cron); err != nil || got != want {
			t.Errorf("runsPerHour(%q) = %v, %v; want %v", cron, got, err, want)
		}
	}
	for _, cron := range []string{"0 3 * * *", "*/x * * * *", "* * *"} {
		if _, err := runsPerHour(cron); err == nil {
			t.Errorf("runsPerHour(%q) accepted", cron)
		}
	}
}

// The monthly figure: each fixed cost an idle deployment pays, and the
// reports of the workload, by hand.
func TestMonthly(t *testing.T) {
	t.Parallel()
	p := testPrices()
	d := Deployment{
		Sizes: map[string]Size{
			"DrainTriggers": {Memory: "256Mi", GiB: 0.25, VCPU: 0.5},
			"Sweep":         {Memory: "512Mi", GiB: 0.5, VCPU: 1},
		},
		Scheduled: []string{"DrainTriggers", "Sweep"},
		Crons:     map[string]string{"DrainTriggers": "* * * * *", "Sweep": "*/5 * * * *"},
		RedisTier: "BASIC", RedisGB: 2, RetentionDays: 10, MinInstances: 1,
	}
	w := Workload{SmallPerDay: 100, BigPerDay: 2, Days: 30, DrainBusySecPerMin: 50, SweepSecPerRun: 2}
	small := PerReport{Cost: ReportCost{TotalUSD: 0.001}, CSVBytes: 1 << 20}
	big := PerReport{Cost: ReportCost{TotalUSD: 0.5}, CSVBytes: 1 << 30}
	got, err := p.Monthly(w, d, small, big)
	if err != nil {
		t.Fatal(err)
	}
	drainRuns, sweepRuns := 60.0*24*30, 12.0*24*30
	month := 30.0 * 24 * 3600
	want := map[string]float64{
		"Memorystore":         1 * 2 * 730,
		"DrainTriggers drain": drainRuns*50*(0.5*0.01+0.25*0.001) + drainRuns*1e-6,
		"sweeper (Sweep)":     sweepRuns*2*(1*0.01+0.5*0.001) + sweepRuns*1e-6,
		"Cloud Scheduler":     2 * 3,
		"minimum instances":   month*(0.5*0.001+0.25*0.0001) + month*(1*0.001+0.5*0.0001),
		"small reports":       100 * 30 * 0.001,
		"big reports":         2 * 30 * 0.5,
		"CSVs stored":         10 * (100.0/1024 + 2) * 1,
	}
	gotLines := map[string]float64{}
	var fixed, total float64
	for _, l := range got.Lines {
		gotLines[l.Item] = l.USD
		total += l.USD
		if l.Fixed {
			fixed += l.USD
		}
		if wantFixed := !strings.Contains(l.Item, "reports") && l.Item != "CSVs stored"; l.Fixed != wantFixed {
			t.Errorf("%s: fixed %v, want %v", l.Item, l.Fixed, wantFixed)
		}
	}
	if diff := cmp.Diff(want, gotLines, approx); diff != "" {
		t.Errorf("monthly lines (-want +got):\n%s", diff)
	}
	if math.Abs(got.TotalUSD-total) > 1e-6 || math.Abs(got.FixedUSD-fixed) > 1e-6 {
		t.Errorf("total %v fixed %v, lines sum to %v and %v", got.TotalUSD, got.FixedUSD, total, fixed)
	}
	if len(got.Alternatives) != 1 || math.Abs(got.Alternatives[0].USD-730) > 1e-9 {
		t.Errorf("alternatives %+v, want Memorystore BASIC 1 GB at 730", got.Alternatives)
	}

	delete(d.Crons, "Sweep")
	if _, err := p.Monthly(w, d, small, big); err == nil {
		t.Error("Monthly without the sweeper's schedule: no error")
	}
}

// The real price list and the real module give a monthly figure, with
// every function's size read from Terraform.
func TestMonthlyFromTheModule(t *testing.T) {
	t.Parallel()
	p, err := LoadPrices()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ReadDeployment("../../terraform")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range topology.Functions() {
		if s, ok := d.Sizes[f.EntryPoint]; !ok || s.GiB <= 0 || s.VCPU <= 0 {
			t.Errorf("%s: size %+v from the module", f.EntryPoint, s)
		}
	}
	m, err := p.Monthly(DefaultWorkload, d, PerReport{}, PerReport{})
	if err != nil {
		t.Fatal(err)
	}
	if m.FixedUSD <= 0 || m.TotalUSD != m.FixedUSD {
		t.Errorf("an idle deployment: fixed $%v, total $%v; want equal and positive", m.FixedUSD, m.TotalUSD)
	}
}

func TestReadDeployment(t *testing.T) {
	t.Parallel()
	got, err := ReadDeployment("testdata/tf")
	if err != nil {
		t.Fatal(err)
	}
	want := Deployment{
		Sizes: map[string]Size{
			"WorkA": {Memory: "1Gi", GiB: 1, VCPU: 0.583, CPUFromMemory: true},
			"WorkB": {Memory: "1Gi", GiB: 1, VCPU: 0.583, CPUFromMemory: true},
			"Fast":  {Memory: "256Mi", GiB: 0.25, VCPU: 1},
			"Tick":  {Memory: "128Mi", GiB: 0.125, VCPU: 0.5},
		},
		Scheduled: []string{"Tick"},
		Crons:     map[string]string{"Tick": "*/10 * * * *"},
		RedisTier: "BASIC", RedisGB: 2, RetentionDays: 7,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadDeployment (-want +got):\n%s", diff)
	}
	if _, err := ReadDeployment(t.TempDir()); err == nil {
		t.Error("ReadDeployment of an empty directory: no error")
	}
}

func TestSizeOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mem  string
		vcpu float64
	}{{"128Mi", 0.083}, {"200Mi", 0.167}, {"512Mi", 0.333}, {"2Gi", 1}, {"64Gi", 8}} {
		s, err := sizeOf(tc.mem, nullCPU)
		if err != nil || s.VCPU != tc.vcpu {
			t.Errorf("sizeOf(%s, null) = %+v, %v; want %v vCPU", tc.mem, s, err, tc.vcpu)
		}
	}
	if _, err := sizeOf("1TB", nullCPU); err == nil {
		t.Error("sizeOf accepted 1TB")
	}
}

// TestMaxConcurrent: overlapping deliveries count together, one that
// starts as another ends does not.
func TestMaxConcurrent(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(sub string, from, to int) relay.Delivery {
		return relay.Delivery{Subscription: sub, Start: t0.Add(time.Duration(from) * time.Second), End: t0.Add(time.Duration(to) * time.Second)}
	}
	d := newDeliveries()
	got := maxConcurrent([]relay.Delivery{
		at("aggregate", 0, 10), at("aggregate", 2, 4), at("aggregate", 3, 5), at("aggregate", 5, 6),
		at("listen-withdraw", 0, 1), at("listen-withdraw", 1, 2),
	}, d.functionName)
	if diff := cmp.Diff(map[string]int{"Aggregate": 3, "ListenWithdraw": 1}, got); diff != "" {
		t.Errorf("maxConcurrent (-want +got):\n%s", diff)
	}
}

func TestFnUsage(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	push := func(sub string, ms int, acked bool) relay.Delivery {
		return relay.Delivery{Subscription: sub, Start: t0, End: t0.Add(time.Duration(ms) * time.Millisecond), Acked: acked}
	}
	d := newDeliveries()
	ds := []relay.Delivery{push("listen-withdraw", 1234, true), push("listen-withdraw", 50, false), push("aggregate", 100, true), push("px-aggregate", 2001, true)}
	sizes := map[string]Size{"ListenWithdraw": {GiB: 0.5, VCPU: 0.333}, "Aggregate": {GiB: 1, VCPU: 1}}
	got := fnUsage(ds, d.functionName, sizes)
	want := map[string]FnUsage{
		"ListenWithdraw": {Requests: 2, Failed: 1, Seconds: 1.284, BilledSec: 1.4, LongestSec: 1.234, VCPUSeconds: 1.4 * 0.333, GiBSeconds: 0.7, MaxConcurrent: 2},
		"Aggregate":      {Requests: 2, Seconds: 2.101, BilledSec: 2.2, LongestSec: 2.001, VCPUSeconds: 2.2, GiBSeconds: 2.2, MaxConcurrent: 2},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("fnUsage (-want +got):\n%s", diff)
	}
	if fn, sec := longest(got); fn != "Aggregate" || sec != 2.001 {
		t.Errorf("longest = %s %v, want Aggregate 2.001", fn, sec)
	}
}

func TestPubSubUsage(t *testing.T) {
	t.Parallel()
	msgs := []*pstest.Message{
		{ID: "1", Data: make([]byte, 100), Attributes: map[string]string{"recordId": "7", "kind": "stage"}},   // 100+8+1+4+5
		{ID: "2", Data: make([]byte, 3000), Attributes: map[string]string{"recordId": "7"}, OrderingKey: "k"}, // 3000+9+1
		{ID: "3", Data: make([]byte, 10), Attributes: map[string]string{"recordId": "8"}},
	}
	pushes := []relay.Delivery{{MessageID: "1"}, {MessageID: "1"}, {MessageID: "1"}}
	got := pubsubUsage(msgs, 7, pushes)
	want := PubSubUsage{Messages: 2, Bytes: 118 + 3010, Deliveries: 3,
		// message 1: published and pushed 3 times, 1000 bytes each; message 2: published, delivered once
		BillableBytes: 4*1000 + 2*3010}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pubsubUsage (-want +got):\n%s", diff)
	}
}

func TestClassifyGCS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ method, path, query, want string }{
		{http.MethodPost, "/upload/storage/v1/b/reports/o", "uploadType=multipart", "upload"},
		{http.MethodPost, "/upload/storage/v1/b/reports/o", "uploadType=resumable&name=a.csv", "upload"},
		{http.MethodPut, "/upload/storage/v1/b/reports/o", "uploadType=resumable&upload_id=x1", "upload part"},
		{http.MethodPost, "/upload/storage/v1/b/reports/o", "uploadType=resumable&upload_id=x1", "upload part"},
		{http.MethodPost, "/storage/v1/b/reports/o/reports%2F1%2Fa.csv/compose", "", "compose"},
		{http.MethodDelete, "/storage/v1/b/reports/o/tmp%2F1%2Fpart-000001.csv", "", "delete"},
		{http.MethodGet, "/storage/v1/b/reports/o", "prefix=tmp", "list"},
		{http.MethodGet, "/storage/v1/b/reports/o/a.csv", "", "read"},
		{http.MethodGet, "/reports/a.csv", "", "read"},
		{http.MethodPatch, "/storage/v1/b/reports/o/a.csv", "", "other"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if got := classifyGCS(tc.method, tc.path, q); got != tc.want {
			t.Errorf("classifyGCS(%s %s?%s) = %q, want %q", tc.method, tc.path, tc.query, got, tc.want)
		}
	}
	ops := GCSOps{Uploads: 1, UploadParts: 7, Composes: 2, Deletes: 3, Lists: 4, Reads: 5, Other: 6}
	if ops.ClassA() != 20 || ops.ClassB() != 5 {
		t.Errorf("class A %d, B %d; want 20, 5", ops.ClassA(), ops.ClassB())
	}
}

func TestPartsOf(t *testing.T) {
	t.Parallel()
	attr := func(p string) relay.Delivery { return relay.Delivery{Attributes: map[string]string{"part": p}} }
	ev := func(proc, src string, part any, rows any) Event {
		return Event{Process: proc, Source: src, Part: part, Rows: rows}
	}
	for _, tc := range []struct {
		name   string
		tl     []Event
		pushes []relay.Delivery
		want   PartSizes
	}{
		{"no part attribute: one part, the report's rows", nil, []relay.Delivery{{}}, PartSizes{Parts: 1, Source: "report", Rows: []int64{42}, MaxOverMedian: 1}},
		{"one part of one", nil, []relay.Delivery{attr("0/1")}, PartSizes{Parts: 1, Source: "report", Rows: []int64{42}, MaxOverMedian: 1}},
		{"parts from the driving source's lines, a redelivery's last", []Event{
			ev("ListenWithdraw", "plt_fund.vs_withdraw", "0/3", float64(10)),
			ev("ListenWithdraw", "plt_fund.vs_withdraw", "1/3", float64(999)),
			ev("ListenWithdraw", "plt_fund.vs_withdraw", "1/3", float64(30)),
			ev("ListenWithdraw", "plt_fund.vs_withdraw", float64(2), float64(20)),
			ev("ListenUserTagRelation", "plt_user.vs_user_tag_relation", "0/3", float64(5)),
			ev("Aggregate", "", "0/3", float64(100000)),
		}, []relay.Delivery{attr("0/3"), attr("2/3")}, PartSizes{Parts: 3, Source: "plt_fund.vs_withdraw", Rows: []int64{10, 30, 20}, MaxOverMedian: 1.5}},
		{"parts without sizes in the logs", nil, []relay.Delivery{attr("4/8")}, PartSizes{Parts: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, partsOf(tc.tl, tc.pushes, 42)); diff != "" {
				t.Errorf("partsOf (-want +got):\n%s", diff)
			}
		})
	}
	if got := maxOverMedian([]int64{1, 2, 3, 12}); got != 6 {
		t.Errorf("maxOverMedian = %v, want 6 (12 over the lower middle 2)", got)
	}
}

// -skew puts half the rows in the first 1% of the users; without it a
// fifth go to the first 5%.
func TestPickUserSkew(t *testing.T) {
	t.Parallel()
	const users, n = 10_000, 200_000
	for _, tc := range []struct {
		skew     bool
		hot      int
		min, max float64
	}{{true, users / 100, 0.49, 0.52}, {false, users / 20, 0.22, 0.26}} {
		rng := newRand(1)
		hot := 0
		for range n {
			if pickUser(rng, users, tc.skew) <= tc.hot {
				hot++
			}
		}
		if share := float64(hot) / n; share < tc.min || share > tc.max {
			t.Errorf("skew %v: the first %d users hold %.3f of the rows, want %.2f-%.2f", tc.skew, tc.hot, share, tc.min, tc.max)
		}
	}
}

func TestServerProcs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for pid, comm := range map[string]string{"10": "mariadbd\n", "20": "redis-server\n", "21": "redis-server\n", "30": "bash\n", "self": "x\n"} {
		mustWrite(t, dir+"/"+pid+"/comm", comm)
	}
	got := serverProcs(dir)
	want := []fnProc{{10, "MariaDB (shared)"}, {20, "Redis (shared)"}, {21, "Redis (shared) pid 21"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("serverProcs (-want +got):\n%s", diff)
	}
}

var nullCPU = cty.NullVal(cty.String)

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// At its configured size a function cannot do its CPU work faster than
// CPU seconds / vCPU: billed seconds are the larger of that and the
// handler time measured here.
func TestAtSize(t *testing.T) {
	t.Parallel()
	sizes := map[string]Size{"Slow": {GiB: 0.5, VCPU: 0.25}, "Waits": {GiB: 1, VCPU: 1}}
	fns := map[string]FnUsage{"Slow": {Requests: 1, BilledSec: 1}, "Waits": {Requests: 1, BilledSec: 3}}
	got := atSize(fns, map[string]float64{"Slow": 2, "Waits": 0.5}, sizes)
	want := map[string]FnUsage{
		"Slow":  {Requests: 1, BilledSec: 8, CPUSec: 2, VCPUSeconds: 2, GiBSeconds: 4},
		"Waits": {Requests: 1, BilledSec: 3, CPUSec: 0.5, VCPUSeconds: 3, GiBSeconds: 3},
	}
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("atSize (-want +got):\n%s", diff)
	}
}

// The JSON keys others read (issue 13): the ratio, the CSV check and the
// small reports' p50 stay; the longest delivery, the parts and the cost
// are there too.
func TestJSONKeys(t *testing.T) {
	t.Parallel()
	r := Results{Best: []Best{{}}, Small: []SmallResult{{}}, Monthly: &Monthly{}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Best    []map[string]json.RawMessage `json:"best"`
		Small   []map[string]json.RawMessage `json:"small"`
		Monthly map[string]json.RawMessage   `json:"monthly"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ratio", "csvMatchesMariaDB", "longestDeliverySec", "longestDeliveryFunction", "parts", "cost", "cpuSec", "floorSec"} {
		if _, ok := m.Best[0][k]; !ok {
			t.Errorf("best[] has no %q", k)
		}
	}
	for _, k := range []string{"wallP50Ms", "costPerReport", "longestDeliverySec"} {
		if _, ok := m.Small[0][k]; !ok {
			t.Errorf("small[] has no %q", k)
		}
	}
	for _, k := range []string{"lines", "totalUsd", "fixedUsd", "workload"} {
		if _, ok := m.Monthly[k]; !ok {
			t.Errorf("monthly has no %q", k)
		}
	}
}
