package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/local/relay"
	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/schema"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
)

// Results is everything one bench run measured.
type Results struct {
	RunID string  `json:"runId"`
	Spec  genSpec `json:"spec"`
	// PartRows and MaxParts are what the run set (0: the functions' defaults).
	PartRows    int           `json:"partRows,omitempty"`
	MaxParts    int           `json:"maxParts,omitempty"`
	Load        []genResult   `json:"load"`
	GenerateSec float64       `json:"generateSec"`
	BuildSec    float64       `json:"buildSec"`
	StartSec    float64       `json:"stackStartSec"`
	Procs       []fnProc      `json:"processes"`
	Reports     []BigResult   `json:"reports"`
	Best        []Best        `json:"best"`
	Small       []SmallResult `json:"small"`
	TotalSec    float64       `json:"totalSec"`
	LogDir      string        `json:"logDir,omitempty"`
	Kept        []string      `json:"keptDatabases,omitempty"`

	// CPUs is this machine's cores: the floor of a report is its CPU
	// seconds over them.
	CPUs int `json:"cpus"`
	// Servers are the shared servers whose CPU each report counts.
	Servers []fnProc `json:"servers"`
	// Deployment is what the cost model read from the Terraform module.
	Deployment Deployment `json:"deployment"`
	// PricesAsOf and PricesSource say which price list priced the costs.
	PricesAsOf   string   `json:"pricesAsOf"`
	PricesSource string   `json:"pricesSource"`
	Monthly      *Monthly `json:"monthly,omitempty"`
	// LoadStart and LoadEnd are the machine's load averages (1, 5, 15
	// minutes) when the run started and ended: how noisy it was.
	LoadStart [3]float64 `json:"loadAvgStart"`
	LoadEnd   [3]float64 `json:"loadAvgEnd"`
}

// Best sums up the big reports of one type over the -repeat attempts.
type Best struct {
	Type         string  `json:"type"`
	Attempts     int     `json:"attempts"`
	PipelineSec  float64 `json:"pipelineBestSec"`
	MariaDBSec   float64 `json:"mariadbBestSec"`
	Ratio        float64 `json:"ratio"`
	PeakRSSMiB   float64 `json:"maxPeakRssMiB"` // over the function processes and attempts
	PeakRSSProc  string  `json:"maxPeakRssProcess"`
	RedisRatio   float64 `json:"maxRedisGrowthPerCsvByte"`
	AllMatch     bool    `json:"csvMatchesMariaDB"`
	AllSucceeded bool    `json:"allSucceeded"`
	// LongestDeliverySec is the longest single push over the attempts,
	// LongestDeliveryFn its function.
	LongestDeliverySec float64 `json:"longestDeliverySec"`
	LongestDeliveryFn  string  `json:"longestDeliveryFunction"`
	// CPUSec and FloorSec are the best attempt's CPU seconds of every
	// process and the wall time they imply at best on this machine.
	CPUSec   float64   `json:"cpuSec"`
	FloorSec float64   `json:"floorSec"`
	Parts    PartSizes `json:"parts"` // the last attempt's
	// Cost is the mean over the attempts that succeeded.
	Cost ReportCost `json:"cost"`
	// CSVBytes is the CSV's size (the last attempt's).
	CSVBytes int64 `json:"csvBytes"`
	costs    int
}

// BigResult is one report over most of the data.
type BigResult struct {
	Type        string  `json:"type"`
	Attempt     int     `json:"attempt"`
	Params      string  `json:"params"`
	RecordID    int64   `json:"recordId"`
	Status      string  `json:"status"`
	FailReason  string  `json:"failReason,omitempty"`
	Rows        int64   `json:"rowCount"`
	CSVBytes    int64   `json:"csvBytes"`
	CSVSHA      string  `json:"csvSha256"`
	PipelineSec float64 `json:"pipelineSec"` // publish → SUCCESS seen by the client
	ServerSec   float64 `json:"serverSec"`   // record updated_at − created_at

	MariaDB        []oracleRun `json:"mariadb"`
	MariaDBBestSec float64     `json:"mariadbBestSec"`
	Ratio          float64     `json:"ratio"` // pipeline / best MariaDB
	Match          bool        `json:"csvMatchesMariaDB"`

	RedisBaseline    int64   `json:"redisBaselineBytes"`
	RedisGrowth      int64   `json:"redisPeakGrowthBytes"`
	RedisGrowthRatio float64 `json:"redisGrowthPerCsvByte"`
	HashPeak         int64   `json:"hashPeakBytes"` // MEMORY USAGE of the report's hash
	HashRatio        float64 `json:"hashPerCsvByte"`
	Samples          int     `json:"samples"`

	Procs    map[string]ProcMem `json:"processes"`
	Timeline []Event            `json:"timeline"`

	// ServerCPU is the shared servers' CPU seconds during the report
	// (other clients' work included).
	ServerCPU map[string]float64 `json:"serverCpuSec"`
	// CPUSec sums every process's CPU seconds (Procs and ServerCPU);
	// FloorSec is CPUSec over this machine's cores: no wall time below it.
	CPUSec   float64 `json:"cpuSec"`
	FloorSec float64 `json:"floorSec"`
	// Functions are the pushes of the report by function (requests,
	// handler seconds, longest delivery, vCPU- and GiB-seconds).
	Functions          map[string]FnUsage `json:"functions"`
	LongestDeliverySec float64            `json:"longestDeliverySec"`
	LongestDeliveryFn  string             `json:"longestDeliveryFunction"`
	PubSub             PubSubUsage        `json:"pubsub"`
	GCS                GCSOps             `json:"gcsOps"`
	// HashByteSec is the report hash's bytes integrated over the report.
	HashByteSec float64    `json:"hashByteSeconds"`
	Parts       PartSizes  `json:"parts"`
	Cost        ReportCost `json:"cost"`
	LoadAvg     [3]float64 `json:"loadAvg"` // at the end
}

// SmallResult summarises the small reports of one type.
type SmallResult struct {
	Type        string  `json:"type"`
	Runs        int     `json:"runs"`
	Succeeded   int     `json:"succeeded"`
	Failed      int     `json:"failed"`
	RowsMin     int64   `json:"rowsMin"`
	RowsMax     int64   `json:"rowsMax"`
	WallP50Ms   float64 `json:"wallP50Ms"`
	WallP95Ms   float64 `json:"wallP95Ms"`
	WallMaxMs   float64 `json:"wallMaxMs"`
	ServerP50Ms float64 `json:"serverP50Ms"`
	ServerP95Ms float64 `json:"serverP95Ms"`
	// Timeline is the median time of each log event over the runs.
	Timeline []Event `json:"medianTimeline"`

	// Per report, the mean over the runs: CPU seconds of every process
	// (idle work of the stack during the runs included), pushes by
	// function, Pub/Sub, Cloud Storage, cost.
	CPUSec    float64            `json:"cpuSecPerReport"`
	Functions map[string]FnUsage `json:"functionsPerReport"`
	PubSub    PubSubUsage        `json:"pubsubPerReport"`
	GCS       GCSOps             `json:"gcsOpsAllRuns"` // over all the runs: counts do not divide
	Cost      ReportCost         `json:"costPerReport"`
	CSVBytes  int64              `json:"csvBytesPerReport"`
	// LongestDeliverySec is the longest single push over the runs.
	LongestDeliverySec float64    `json:"longestDeliverySec"`
	LoadAvg            [3]float64 `json:"loadAvg"` // at the end
}

// Event is one log line of a function about the report.
type Event struct {
	AtSec   float64 `json:"atSec"` // since the request
	Process string  `json:"process"`
	// Source and Severity are the line's own fields (shared/logging).
	Source   string `json:"source,omitempty"`
	Severity string `json:"severity,omitempty"`
	Message  string `json:"message"`
	Stage    any    `json:"stage,omitempty"`
	Rows     any    `json:"rows,omitempty"`
	Part     any    `json:"part,omitempty"`
}

// bigFrom/bigTo select eleven of the twelve months of withdrawals.
var (
	bigFrom = year2026
	bigTo   = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

// smallTag is the one tag the small reports ask for.
const smallTag = 1

// Run generates the data, starts the stack and measures the reports o asks
// for. It returns what was measured so far even when it fails.
func Run(ctx context.Context, o Options) (res *Results, err error) {
	t0 := time.Now()
	runID := randomID()
	id := "bench_" + runID
	spec := genSpec{Seed: o.seed, Users: o.users, Withdrawals: o.withdrawals, Payments: o.payments, Tags: o.tags, MaxTags: o.tagsPerUser, Skew: o.skew}
	res = &Results{RunID: id, Spec: spec, CPUs: runtime.NumCPU(), LoadStart: loadAvg(), PartRows: o.partRows, MaxParts: o.maxParts}
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		res.TotalSec = time.Since(t0).Seconds()
		res.LoadEnd = loadAvg()
	}()
	prices, err := LoadPrices()
	if err != nil {
		return res, err
	}
	res.PricesAsOf, res.PricesSource = prices.AsOf, prices.Source
	if res.Deployment, err = ReadDeployment(o.terraformDir); err != nil {
		return res, fmt.Errorf("the functions' sizes: %w", err)
	}
	res.Servers = serverProcs("/proc")
	bg := context.Background()

	// Databases.
	dsns := schema.DSNs{
		Record: o.mysqlBase + id + "_plt_report",
		Sources: map[string]string{
			"plt_user": o.mysqlBase + id + "_plt_user",
			"plt_fund": o.mysqlBase + id + "_plt_fund",
		},
	}
	userName, fundName := id+"_plt_user", id+"_plt_fund"
	cleanups = append(cleanups, func() {
		if o.keep {
			res.Kept = []string{id + "_plt_report", userName, fundName}
			step("kept databases %s_plt_{report,user,fund}", id)
			return
		}
		if err := schema.Drop(bg, dsns); err != nil {
			step("could not drop the databases: %v", err)
		}
	})
	step("creating databases %s_plt_{report,user,fund}", id)
	if err := schema.Ensure(ctx, dsns); err != nil {
		return res, err
	}
	userDB, err := serverenv.OpenDB(dsns.Sources["plt_user"])
	if err != nil {
		return res, err
	}
	cleanups = append(cleanups, func() { userDB.Close() })
	fundDB, err := serverenv.OpenDB(dsns.Sources["plt_fund"])
	if err != nil {
		return res, err
	}
	cleanups = append(cleanups, func() { fundDB.Close() })

	step("generating %d users (0-%d of %d tags each), %d withdrawals, %d payments (seed %d, %s)",
		spec.Users, spec.MaxTags, spec.Tags, spec.Withdrawals, spec.Payments, spec.Seed, o.load)
	gstart := time.Now()
	res.Load, err = generate(ctx, spec, userDB, fundDB, runID, o.load, step)
	res.GenerateSec = time.Since(gstart).Seconds()
	if err != nil {
		return res, err
	}
	step("generated in %.2fs", res.GenerateSec)
	if spec.Skew {
		step("skewed: half the withdrawals and payments belong to users 1..%d (1%% of %d)", hotUsers(spec.Users), spec.Users)
	}

	// Redis and RabbitMQ names of our own.
	iso := stack.Isolation{ID: id, DSNs: dsns, RedisAddr: o.redisAddr, AMQPURL: o.amqpURL}
	prefix := iso.KeyPrefix()
	rdb := redis.NewClient(&redis.Options{Addr: o.redisAddr})
	cleanups = append(cleanups, func() {
		if err := iso.Cleanup(bg); err != nil {
			step("cleanup: %v", err)
		}
		rdb.Close()
	})
	if err := rdb.Ping(ctx).Err(); err != nil {
		return res, fmt.Errorf("redis %s: %w", o.redisAddr, err)
	}

	// Binaries and processes.
	binDir, err := os.MkdirTemp("", "bench-bin-")
	if err != nil {
		return res, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(binDir) })
	logDir, err := os.MkdirTemp("", "bench-logs-")
	if err != nil {
		return res, err
	}
	res.LogDir = logDir
	cleanups = append(cleanups, func() {
		if o.keep || err != nil {
			step("process logs kept in %s", logDir)
			return
		}
		os.RemoveAll(logDir)
		res.LogDir = ""
	})
	step("building the function server and DrainTriggers")
	bstart := time.Now()
	if err := stack.Build(ctx, o.moduleRoot, binDir); err != nil {
		return res, err
	}
	res.BuildSec = time.Since(bstart).Seconds()
	vars := append(iso.Env(),
		"RETRY_DELAY=1s",
		"NOT_FOUND_DELAY=200ms",
		"NOT_FOUND_ATTEMPTS=3",
		// CLAIM_TTL keeps its default (the function timeout): a long join
		// must not be taken over.
		"TZ=America/Sao_Paulo",
		"LOG_LEVEL=INFO",
	)
	if o.partRows > 0 {
		vars = append(vars, fmt.Sprintf("PART_ROWS=%d", o.partRows))
	}
	if o.maxParts > 0 {
		vars = append(vars, fmt.Sprintf("MAX_PARTS=%d", o.maxParts))
	}
	// The functions reach Cloud Storage through a counter (the later
	// STORAGE_EMULATOR_HOST wins over the stack's own), and every push is
	// observed, for the usage each report is billed for.
	gcs, err := startGCSCounter()
	if err != nil {
		return res, err
	}
	cleanups = append(cleanups, func() { gcs.Close() })
	vars = append(vars, "STORAGE_EMULATOR_HOST="+gcs.Host())
	dl := newDeliveries()
	step("starting the stack")
	sstart := time.Now()
	st, err := stack.Start(ctx, stack.Config{
		BinDir: binDir, Project: "bench-project", PubSubAddr: "127.0.0.1:0", GCSHost: "127.0.0.1", GCSPort: 0,
		Bucket: "reports", Backoff: time.Second, AckDeadline: 30 * time.Second,
		Env: vars, LogDir: logDir, Log: logger(), Observe: dl.observe, Concurrency: o.concurrency,
	})
	if err != nil {
		return res, err
	}
	cleanups = append(cleanups, func() { step("stopping the stack"); st.Close() })
	if err := gcs.setTarget(st.StorageURL); err != nil {
		return res, err
	}
	res.StartSec = time.Since(sstart).Seconds()
	if res.Procs, err = stackProcs(st); err != nil {
		return res, err
	}
	names := make([]string, len(res.Procs))
	for i, p := range res.Procs {
		names[i] = fmt.Sprintf("%s=%d", p.Name, p.PID)
	}
	step("stack up in %.2fs (build %.2fs): %s", res.StartSec, res.BuildSec, strings.Join(names, " "))

	recDB, err := serverenv.OpenDB(dsns.Record)
	if err != nil {
		return res, err
	}
	cleanups = append(cleanups, func() { recDB.Close() })
	c := &client.Client{
		Records: record.NewRepo(recDB), State: state.New(rdb, prefix, 10*time.Minute),
		AMQPURL: o.amqpURL, TriggerQueue: iso.Queues()["TRIGGER_QUEUE"], StorageURL: st.StorageURL,
	}
	b := &bench{o: o, c: c, rdb: rdb, fund: fundDB, userName: userName, fundName: fundName, logDir: logDir, procs: res.Procs,
		servers: res.Servers, st: st, dl: dl, gcs: gcs, prices: prices, sizes: res.Deployment.Sizes}

	types := report.Types()
	if o.report != "all" {
		types = []string{o.report}
	}
	for _, typ := range types {
		best := Best{Type: typ, AllMatch: true, AllSucceeded: true}
		for a := 1; a <= o.repeat; a++ {
			br, err := b.big(ctx, typ)
			br.Attempt = a
			res.Reports = append(res.Reports, br)
			best.add(br)
			if err != nil {
				res.Best = append(res.Best, best)
				return res, err
			}
		}
		res.Best = append(res.Best, best)
	}
	if o.smallRuns > 0 {
		for _, typ := range types {
			sr, err := b.small(ctx, typ)
			res.Small = append(res.Small, sr)
			if err != nil {
				return res, err
			}
		}
	}
	if len(res.Best) > 0 && len(res.Small) > 0 {
		m, err := prices.Monthly(o.workload, res.Deployment, meanSmall(res.Small), meanBig(res.Best))
		if err != nil {
			return res, err
		}
		res.Monthly = &m
	}
	return res, nil
}

// meanSmall is the mean small report over the report types.
func meanSmall(ss []SmallResult) PerReport {
	var p PerReport
	for _, s := range ss {
		p.Cost = addCost(p.Cost, s.Cost, 1/float64(len(ss)))
		p.CSVBytes += s.CSVBytes / int64(len(ss))
	}
	return p
}

// meanBig is the mean big report over the report types.
func meanBig(bs []Best) PerReport {
	var p PerReport
	for _, b := range bs {
		p.Cost = addCost(p.Cost, b.Cost, 1/float64(len(bs)))
		p.CSVBytes += b.CSVBytes / int64(len(bs))
	}
	return p
}

// addCost is a + w*b.
func addCost(a, b ReportCost, w float64) ReportCost {
	return ReportCost{a.FunctionsUSD + w*b.FunctionsUSD, a.PubSubUSD + w*b.PubSubUSD, a.StorageUSD + w*b.StorageUSD, a.TotalUSD + w*b.TotalUSD}
}

type bench struct {
	o                  Options
	c                  *client.Client
	rdb                *redis.Client
	fund               *sql.DB
	userName, fundName string
	logDir             string
	procs              []fnProc
	servers            []fnProc
	st                 *stack.Stack
	dl                 *deliveries
	gcs                *gcsCounter
	prices             Prices
	sizes              map[string]Size
}

// usage fills in what record rid used (pushes, Pub/Sub, the Cloud
// Storage operations ops, the parts) and what it cost.
func (b *bench) usage(rid int64, ops GCSOps, procs map[string]ProcMem) (map[string]FnUsage, PubSubUsage, ReportCost) {
	pushes := b.dl.of(rid)
	fns := atSize(fnUsage(pushes, b.dl.functionName, b.sizes), procCPU(procs, 1), b.sizes)
	ps := pubsubUsage(b.st.PubSub.Messages(), rid, pushes)
	return fns, ps, b.prices.Report(fns, ps, ops)
}

// procCPU is each process's CPU seconds divided by n.
func procCPU(procs map[string]ProcMem, n float64) map[string]float64 {
	out := map[string]float64{}
	for name, p := range procs {
		out[name] = p.CPUSec / n
	}
	return out
}

// cpuTotal sums the CPU seconds of the stack's processes and the servers'.
func cpuTotal(procs map[string]ProcMem, servers map[string]float64) float64 {
	var t float64
	for _, p := range procs {
		t += p.CPUSec
	}
	for _, s := range servers {
		t += s
	}
	return t
}

func paramsJSON(tags []int64, from, to time.Time) string {
	s := make([]string, len(tags))
	for i, t := range tags {
		s[i] = strconv.FormatInt(t, 10)
	}
	return fmt.Sprintf(`{"tagIds":[%s],"from":%q,"to":%q}`, strings.Join(s, ","),
		from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
}

// big requests one report over most of the data, watching the processes
// and Redis, then runs MariaDB's single-query join of the same report.
func (b *bench) big(ctx context.Context, typ string) (br BigResult, err error) {
	rep, _ := report.Lookup(typ)
	var tags []int64
	for t := 1; t <= b.o.selectTags; t++ {
		tags = append(tags, int64(t))
	}
	params := paramsJSON(tags, bigFrom, bigTo)
	br = BigResult{Type: typ, Params: params}
	step("%s: requesting tags 1..%d, %s to %s", typ, b.o.selectTags, bigFrom.Format(time.DateOnly), bigTo.Format(time.DateOnly))

	smp := newSampler(ctx, b.procs, b.servers, b.rdb)
	ops0 := b.gcs.snapshot()
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); smp.run(sctx, 50*time.Millisecond) }()
	start := time.Now()
	var rid int64
	rid, err = b.c.Request(ctx, typ, []byte(params))
	var rec record.Record
	if err == nil {
		smp.setKey(b.c.State.Key(rid))
		wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		rec, err = b.c.Wait(wctx, rid, nil)
		cancel()
	}
	wall := time.Since(start)
	stop()
	wg.Wait()
	br.Procs = smp.finish()
	br.ServerCPU = smp.serverCPU()
	br.CPUSec = cpuTotal(br.Procs, br.ServerCPU)
	br.FloorSec = br.CPUSec / float64(runtime.NumCPU())
	br.LoadAvg = loadAvg()
	br.RecordID, br.PipelineSec = rid, wall.Seconds()
	br.RedisBaseline, br.RedisGrowth, br.HashPeak, br.Samples = smp.redisBase, smp.redisMax-smp.redisBase, smp.hashMax, smp.samples
	br.HashByteSec = smp.hashByteSec
	// Read the logs and the usage last: a function may log, delete or
	// publish after the client saw SUCCESS (the MariaDB joins run first).
	defer func() {
		tl, terr := timelines(b.logDir, map[int64]time.Time{rid: start})
		br.Timeline = tl[rid]
		br.GCS = b.gcs.snapshot().sub(ops0)
		br.Functions, br.PubSub, br.Cost = b.usage(rid, br.GCS, br.Procs)
		br.LongestDeliveryFn, br.LongestDeliverySec = longest(br.Functions)
		br.Parts = partsOf(br.Timeline, b.dl.of(rid), br.Rows)
		if err == nil {
			err = terr
		}
	}()
	if err != nil {
		return br, err
	}
	br.Status, br.FailReason, br.Rows = rec.Status.String(), rec.FailReason, rec.RowCount
	br.ServerSec = rec.UpdatedAt.Sub(rec.CreatedAt).Seconds()
	if rec.Status != record.Success {
		return br, fmt.Errorf("%s: record %d %s: %s (logs: %s)", typ, rid, rec.Status, rec.FailReason, b.logDir)
	}
	body, err := b.c.Fetch(ctx, rec.FilePath)
	if err != nil {
		return br, err
	}
	br.CSVBytes = int64(len(body))
	br.CSVSHA = fmt.Sprintf("%x", sha256.Sum256(body))
	b.deleteObject(ctx, rec.FilePath) // the emulator keeps objects in this process's memory
	if br.CSVBytes > 0 {
		br.RedisGrowthRatio = float64(br.RedisGrowth) / float64(br.CSVBytes)
		br.HashRatio = float64(br.HashPeak) / float64(br.CSVBytes)
	}
	step("%s: SUCCESS in %.2fs, %d rows, %.1f MiB CSV, Redis +%.1f MiB (hash %.1f MiB)", typ, br.PipelineSec, br.Rows,
		mib(br.CSVBytes), mib(br.RedisGrowth), mib(br.HashPeak))

	if !b.o.mariadb {
		step("%s: MariaDB's joins skipped (-mariadb=false)", typ)
		return br, nil
	}
	br.Match = true
	p, err := report.ParseParams([]byte(params))
	if err != nil {
		return br, err
	}
	refDB := report.RefDB{Names: map[string]string{"plt_user": b.userName, "plt_fund": b.fundName}}
	for _, o := range seed.Oracles(rep, refDB, p) {
		v := o.Reference.Name
		step("%s: MariaDB single-query join (%s)", typ, v)
		r, err := runOracle(ctx, b.fund, o)
		if err != nil {
			return br, err
		}
		br.MariaDB = append(br.MariaDB, r)
		if br.MariaDBBestSec == 0 || r.Seconds < br.MariaDBBestSec {
			br.MariaDBBestSec = r.Seconds
		}
		br.Match = br.Match && r.CSVSHA == br.CSVSHA
		step("%s: MariaDB %s: %.2fs, %d rows, same CSV: %v", typ, v, r.Seconds, r.Rows, r.CSVSHA == br.CSVSHA)
	}
	br.Ratio = br.PipelineSec / br.MariaDBBestSec
	return br, nil
}

// small runs the small reports of one type one after the other.
func (b *bench) small(ctx context.Context, typ string) (sr SmallResult, err error) {
	sr = SmallResult{Type: typ, Runs: b.o.smallRuns}
	step("%s: %d small reports (tag %d, ~%d rows each)", typ, b.o.smallRuns, smallTag, b.o.smallRows)
	var wall, server []float64
	starts := map[int64]time.Time{}
	smp := newSampler(ctx, b.procs, b.servers, b.rdb)
	ops0 := b.gcs.snapshot()
	var csvBytes int64
	// Whatever ran is summed up, even if a later run fails.
	defer func() {
		sr.Succeeded = len(wall)
		sr.LoadAvg = loadAvg()
		if len(wall) == 0 {
			return
		}
		n := float64(len(starts))
		procs := smp.finish()
		sr.CPUSec = cpuTotal(procs, smp.serverCPU()) / n
		sr.CSVBytes = csvBytes / int64(len(starts))
		sr.GCS = b.gcs.snapshot().sub(ops0)
		var ids []int64
		for id := range starts {
			ids = append(ids, id)
		}
		b.smallUsage(&sr, ids, procCPU(procs, n))
		step("%s: per small report: %.2f CPU s, $%.7f", typ, sr.CPUSec, sr.Cost.TotalUSD)
		sr.WallP50Ms, sr.WallP95Ms, sr.WallMaxMs = percentile(wall, 50), percentile(wall, 95), percentile(wall, 100)
		sr.ServerP50Ms, sr.ServerP95Ms = percentile(server, 50), percentile(server, 95)
		// Read the logs last: a function may log after the client saw SUCCESS.
		time.Sleep(200 * time.Millisecond)
		tls, terr := timelines(b.logDir, starts)
		sr.Timeline = medianTimeline(tls)
		if err == nil {
			err = terr
		}
	}()
	span := 330 * 24 * time.Hour
	for i := range b.o.smallRuns {
		start := year2026.Add(span * time.Duration(i) / time.Duration(b.o.smallRuns))
		from, to, err := smallWindow(ctx, b.fund, b.userName, b.fundName, smallTag, start, b.o.smallRows)
		if err != nil {
			return sr, err
		}
		params := paramsJSON([]int64{smallTag}, from, to)
		t := time.Now()
		rid, err := b.c.Request(ctx, typ, []byte(params))
		if err != nil {
			return sr, err
		}
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		rec, err := b.c.Wait(wctx, rid, nil)
		cancel()
		d := time.Since(t)
		if err != nil {
			return sr, err
		}
		if rec.Status != record.Success {
			sr.Failed++
			step("%s: small report %d %s: %s", typ, rid, rec.Status, rec.FailReason)
			continue
		}
		starts[rid] = t
		if body, err := b.c.Fetch(ctx, rec.FilePath); err == nil {
			csvBytes += int64(len(body))
		}
		wall = append(wall, float64(d.Microseconds())/1000)
		server = append(server, float64(rec.UpdatedAt.Sub(rec.CreatedAt).Microseconds())/1000)
		if len(wall) == 1 {
			sr.RowsMin, sr.RowsMax = rec.RowCount, rec.RowCount
		}
		sr.RowsMin, sr.RowsMax = min(sr.RowsMin, rec.RowCount), max(sr.RowsMax, rec.RowCount)
	}
	if len(wall) == 0 {
		return sr, fmt.Errorf("%s: every small report failed", typ)
	}
	step("%s: small reports p50 %.0f ms, p95 %.0f ms", typ, percentile(wall, 50), percentile(wall, 95))
	return sr, nil
}

// smallUsage fills in the small reports' usage: pushes, Pub/Sub and cost
// per report (means over ids), and the longest push.
func (b *bench) smallUsage(sr *SmallResult, ids []int64, cpuPerReport map[string]float64) {
	msgs := b.st.PubSub.Messages()
	var all []relay.Delivery
	var ps PubSubUsage
	for _, id := range ids {
		pushes := b.dl.of(id)
		all = append(all, pushes...)
		u := pubsubUsage(msgs, id, pushes)
		ps.Messages += u.Messages
		ps.Bytes += u.Bytes
		ps.Deliveries += u.Deliveries
		ps.BillableBytes += u.BillableBytes
	}
	fns := fnUsage(all, b.dl.functionName, b.sizes)
	_, sr.LongestDeliverySec = longest(fns)
	n := float64(len(ids))
	total := b.prices.Report(fns, ps, sr.GCS)
	sr.PubSub = PubSubUsage{Messages: int(math.Round(float64(ps.Messages) / n)), Bytes: int64(float64(ps.Bytes) / n),
		Deliveries: int(math.Round(float64(ps.Deliveries) / n)), BillableBytes: int64(float64(ps.BillableBytes) / n)}
	per := map[string]FnUsage{}
	for fn, u := range fns {
		per[fn] = FnUsage{Requests: int(math.Round(float64(u.Requests) / n)), Failed: u.Failed, Seconds: u.Seconds / n,
			BilledSec: u.BilledSec / n, LongestSec: u.LongestSec}
	}
	sr.Functions = atSize(per, cpuPerReport, b.sizes)
	sr.Cost = b.prices.Report(sr.Functions, sr.PubSub, GCSOps{})
	sr.Cost.StorageUSD = total.StorageUSD / n
	sr.Cost.TotalUSD += sr.Cost.StorageUSD
}

// medianTimeline is the median time of each distinct log event over the
// runs; Rows holds how many runs logged it.
func medianTimeline(tls map[int64][]Event) []Event {
	events := map[string][]float64{}
	var order []Event
	for _, tl := range tls {
		for _, e := range tl {
			k := fmt.Sprintf("%s|%s|%v", e.Process, e.Message, e.Stage)
			if _, ok := events[k]; !ok {
				order = append(order, Event{Process: e.Process, Source: e.Source, Severity: e.Severity, Message: e.Message, Stage: e.Stage})
			}
			events[k] = append(events[k], e.AtSec)
		}
	}
	for i, e := range order {
		at := events[fmt.Sprintf("%s|%s|%v", e.Process, e.Message, e.Stage)]
		order[i].AtSec, order[i].Rows = percentile(at, 50), len(at)
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].AtSec < order[j].AtSec })
	return order
}

func (b *Best) add(r BigResult) {
	b.Attempts++
	b.AllSucceeded = b.AllSucceeded && r.Status == "SUCCESS"
	b.AllMatch = b.AllMatch && r.Match
	if r.Status == "SUCCESS" && (b.PipelineSec == 0 || r.PipelineSec < b.PipelineSec) {
		b.PipelineSec = r.PipelineSec
	}
	for _, m := range r.MariaDB {
		if b.MariaDBSec == 0 || m.Seconds < b.MariaDBSec {
			b.MariaDBSec = m.Seconds
		}
	}
	if b.MariaDBSec > 0 {
		b.Ratio = b.PipelineSec / b.MariaDBSec
	}
	for n, p := range r.Procs {
		if n != selfName && p.PeakMiB > b.PeakRSSMiB {
			b.PeakRSSMiB, b.PeakRSSProc = p.PeakMiB, n
		}
	}
	b.RedisRatio = max(b.RedisRatio, r.RedisGrowthRatio)
	if r.LongestDeliverySec > b.LongestDeliverySec {
		b.LongestDeliverySec, b.LongestDeliveryFn = r.LongestDeliverySec, r.LongestDeliveryFn
	}
	b.Parts = r.Parts
	if r.Status == "SUCCESS" {
		if r.PipelineSec == b.PipelineSec {
			b.CPUSec, b.FloorSec = r.CPUSec, r.FloorSec
		}
		b.CSVBytes = r.CSVBytes
		// Cost is the running mean of the successful attempts.
		b.costs++
		b.Cost = addCost(addCost(ReportCost{}, b.Cost, float64(b.costs-1)/float64(b.costs)), r.Cost, 1/float64(b.costs))
	}
}

// percentile is the nearest-rank percentile p of xs.
func percentile(xs []float64, p float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// logLine is the structured part of a function's log line that a
// timeline uses: the keys of shared/logging, never the message's wording.
type logLine struct {
	Time     time.Time `json:"time"`
	Severity string    `json:"severity"`
	Message  string    `json:"message"`
	RecordID int64     `json:"recordId"`
	Source   string    `json:"source"`
	Stage    any       `json:"stage"`
	Rows     any       `json:"rows"`
	Part     any       `json:"part"`
}

// timelines collects the functions' log lines about the given records,
// timed from each record's request. A line belongs to a record by its
// recordId field; it is named by its process (the log file) and its
// source field. Lines that are not JSON (a panic's trace) are skipped.
func timelines(logDir string, starts map[int64]time.Time) (map[int64][]Event, error) {
	files, err := filepath.Glob(filepath.Join(logDir, "*.log"))
	if err != nil {
		return nil, fmt.Errorf("timelines: %w", err)
	}
	type timed struct {
		t time.Time
		e Event
	}
	all := map[int64][]timed{}
	for _, f := range files {
		proc := strings.TrimSuffix(filepath.Base(f), ".log")
		err := eachLine(f, func(line []byte) {
			var m logLine
			if json.Unmarshal(line, &m) != nil || m.RecordID == 0 {
				return
			}
			start, ok := starts[m.RecordID]
			if !ok {
				return
			}
			all[m.RecordID] = append(all[m.RecordID], timed{m.Time, Event{AtSec: m.Time.Sub(start).Seconds(),
				Process: proc, Source: m.Source, Severity: m.Severity, Message: m.Message, Stage: m.Stage, Rows: m.Rows, Part: m.Part}})
		})
		if err != nil {
			return nil, err
		}
	}
	out := map[int64][]Event{}
	for id, ts := range all {
		sort.SliceStable(ts, func(i, j int) bool { return ts[i].t.Before(ts[j].t) })
		for _, t := range ts {
			out[id] = append(out[id], t.e)
		}
	}
	return out, nil
}

// eachLine calls fn with every line of the file at path (up to 4 MiB long).
func eachLine(path string, fn func([]byte)) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("timelines: %w", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		fn(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("timelines: read %s: %w", path, err)
	}
	return nil
}

func (b *bench) deleteObject(ctx context.Context, gsPath string) {
	rest, _ := strings.CutPrefix(gsPath, "gs://")
	bucket, object, ok := strings.Cut(rest, "/")
	if !ok {
		return
	}
	u := fmt.Sprintf("%s/storage/v1/b/%s/o/%s", strings.TrimSuffix(b.c.StorageURL, "/"), url.PathEscape(bucket), url.PathEscape(object))
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}
