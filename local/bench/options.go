// Package bench measures the export pipeline end to end on generated data:
// publish→SUCCESS time compared with MariaDB's own single-query join on
// the same data (the reference query of local/seed), peak RSS and CPU of
// every process (the shared servers' included) and the floor they imply,
// each function's pushes and longest delivery, Redis growth compared with
// the CSV size, Pub/Sub and Cloud Storage usage, the parts, the latency of
// small reports, and what it all costs (cost.go: prices.json, sizes from
// the Terraform module). local/cmd/bench is its command.
//
// It works like the end-to-end tests: throwaway databases
// bench_<random>_plt_report/_plt_user/_plt_fund, its own Redis key prefix
// and RabbitMQ queue names, the stack on 127.0.0.1:0 ports with each
// function in its own process.
//
// Data generation loads every table without its secondary indexes and
// builds them afterwards: loading 10M withdrawals into indexed tables took
// 32 minutes, against 10 s for 1M (the index B-trees stop fitting in the
// buffer pool). Each step is timed and printed.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/report"
)

// Options is one run's settings (the command's flags).
type Options struct {
	withdrawals, users, tagsPerUser, tags, payments int
	selectTags                                      int
	report                                          string
	keep                                            bool
	smallRuns, smallRows                            int
	repeat                                          int
	jsonOut                                         bool
	seed                                            int64
	load                                            string
	timeout                                         time.Duration
	mysqlBase, redisAddr, amqpURL                   string
	moduleRoot                                      string
	cpuProfile                                      string
	skew                                            bool
	mariadb                                         bool
	concurrency                                     int
	partRows, maxParts                              int
	terraformDir                                    string
	workload                                        Workload
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ParseFlags reads the command line of local/cmd/bench.
func ParseFlags(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: go run ./local/cmd/bench [flags]

Generates data into throwaway databases, runs the local stack, requests each
report over most of the data, and compares with MariaDB's single-query join.

`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.withdrawals, "withdrawals", 200_000, "rows in plt_fund.vs_withdraw")
	fs.IntVar(&o.users, "users", 0, "users (0: withdrawals/10)")
	fs.IntVar(&o.tagsPerUser, "tags-per-user", 3, "each user gets 0..this many distinct tags (uniformly)")
	fs.IntVar(&o.tags, "tags", 50, "distinct tag IDs (1..tags)")
	fs.IntVar(&o.payments, "payments", -1, "rows in plt_fund.vs_payment (-1: withdrawals/2)")
	fs.IntVar(&o.selectTags, "select-tags", 20, "the big reports request tags 1..this")
	fs.StringVar(&o.report, "report", "all", "one of "+strings.Join(report.Types(), ", ")+", or all")
	fs.BoolVar(&o.keep, "keep", false, "keep the databases (and the process logs)")
	fs.IntVar(&o.repeat, "repeat", 1, "run each big report and its MariaDB join this many times; the targets use the best of each")
	fs.IntVar(&o.smallRuns, "small-runs", 20, "small reports per report type, run one after the other (0: none)")
	fs.IntVar(&o.smallRows, "small-rows", 20, "rows a small report selects (one tag, a narrow time range)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the results as JSON on stdout (progress and the summary go to stderr)")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the generated data")
	fs.StringVar(&o.load, "load", "infile", "how to load: infile (LOAD DATA LOCAL INFILE, falls back to insert) or insert (1000-row INSERTs)")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after this long")
	fs.StringVar(&o.mysqlBase, "mysql", envOr("TEST_MYSQL_BASE", "root@tcp(127.0.0.1:3306)/"), "MariaDB DSN without database")
	fs.StringVar(&o.redisAddr, "redis", envOr("TEST_REDIS_ADDR", "127.0.0.1:6379"), "Redis address")
	fs.StringVar(&o.amqpURL, "amqp", envOr("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ URL")
	fs.StringVar(&o.moduleRoot, "module", ".", "module root to build the functions from")
	fs.BoolVar(&o.skew, "skew", false, "skewed data: half the withdrawals and payments belong to 1% of the users (the first ones); the part sizes show how the reports split")
	fs.BoolVar(&o.mariadb, "mariadb", true, "run MariaDB's single-query joins after each big report (false: no ratio and no CSV comparison, for runs where they take too long: 10M took 277 s and 420 s)")
	fs.IntVar(&o.concurrency, "concurrency", 0, "pushes in flight per subscription (0: the local relay's 8; 1: each function process serves one request at a time, as a production instance does, so its peak RSS is one instance's)")
	fs.IntVar(&o.partRows, "part-rows", 0, "PART_ROWS for the functions, the target rows of a report's part (0: the functions' default)")
	fs.IntVar(&o.maxParts, "max-parts", 0, "MAX_PARTS for the functions, the most parts of one report (0: the functions' default)")
	fs.StringVar(&o.terraformDir, "terraform", "", "the Terraform module the cost model reads the functions' sizes from (default: terraform/ under -module)")
	o.workload = DefaultWorkload
	fs.IntVar(&o.workload.SmallPerDay, "small-per-day", DefaultWorkload.SmallPerDay, "monthly cost: small reports a day")
	fs.IntVar(&o.workload.BigPerDay, "big-per-day", DefaultWorkload.BigPerDay, "monthly cost: big reports a day")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (push relay, pstest, fake-gcs-server, the client) to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.withdrawals < 1 {
		return o, errors.New("-withdrawals must be ≥ 1")
	}
	if o.users <= 0 {
		o.users = max(1, o.withdrawals/10)
	}
	if o.payments < 0 {
		o.payments = o.withdrawals / 2
	}
	if o.tags < 1 || o.tagsPerUser < 0 || o.tagsPerUser > o.tags {
		return o, errors.New("need -tags ≥ 1 and 0 ≤ -tags-per-user ≤ -tags")
	}
	if o.selectTags < 1 || o.selectTags > min(o.tags, report.MaxTagIDs) {
		return o, fmt.Errorf("-select-tags must be 1..%d", min(o.tags, report.MaxTagIDs))
	}
	if o.load != "infile" && o.load != "insert" {
		return o, errors.New("-load must be infile or insert")
	}
	if o.report != "all" {
		if _, ok := report.Lookup(o.report); !ok {
			return o, fmt.Errorf("-report %q: want all or one of %v", o.report, report.Types())
		}
	}
	if o.repeat < 1 {
		return o, errors.New("-repeat must be ≥ 1")
	}
	if o.terraformDir == "" {
		o.terraformDir = filepath.Join(o.moduleRoot, "terraform")
	}
	if o.concurrency < 0 {
		return o, errors.New("-concurrency must be ≥ 0")
	}
	if o.partRows < 0 || o.maxParts < 0 {
		return o, errors.New("-part-rows and -max-parts must be ≥ 0")
	}
	if o.workload.SmallPerDay < 0 || o.workload.BigPerDay < 0 {
		return o, errors.New("-small-per-day and -big-per-day must be ≥ 0")
	}
	if o.smallRows < 1 {
		return o, errors.New("-small-rows must be ≥ 1")
	}
	return o, nil
}

func randomID() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// step prints progress to stderr.
func step(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", a...)
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Main is the command: it parses args, runs the benchmark and prints the
// summary (and, with -json, the results as JSON on stdout). It returns the
// exit code: 2 for a usage error, 1 for a failed run.
func Main(args []string) int {
	o, err := ParseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
	}
	res, err := Run(ctx, o)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if res != nil {
		if o.jsonOut {
			PrintSummary(os.Stderr, res)
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(res); jerr != nil && err == nil {
				err = fmt.Errorf("write JSON: %w", jerr)
			}
		} else {
			PrintSummary(os.Stdout, res)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}
