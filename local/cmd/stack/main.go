// Command stack runs the local system. `stack up` (make up) keeps it in the
// foreground until Ctrl-C; `stack demo` (make demo) seeds the demo data,
// requests every report type as an upstream service would, prints the
// results and exits 0 only if both reached SUCCESS.
//
// MariaDB, Redis and RabbitMQ must be listening (make runs
// `go run ./local/cmd/services ensure` first).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/signing"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/schema"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "demo") {
		return errors.New("usage: stack up|demo [-backoff 60s] [-sweep-every 10s] [-workdir .tmp]")
	}
	mode := args[0]
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	backoff := fs.Duration("backoff", 60*time.Second, "push relay retry backoff (production: 60s)")
	workdir := fs.String("workdir", ".tmp", "binaries and process logs go here")
	sweepEvery := fs.Duration("sweep-every", stack.DefaultSweepEvery, "how often the Sweep function is called (production: every 5 minutes); its limits are SWEEP_PENDING_AFTER and SWEEP_PROCESSING_AFTER from the environment")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var recCfg config.Records
	if err := config.Load(ctx, &recCfg); err != nil {
		return err
	}
	dsns := schema.DSNs{Record: recCfg.DSN, Sources: map[string]string{}}
	for _, db := range report.Databases() {
		dsn, err := config.SourceDSN(db)
		if err != nil {
			return err
		}
		dsns.Sources[db] = dsn
	}
	step := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "==> "+format+"\n", a...) }
	step("creating missing databases and tables")
	if err := schema.Ensure(ctx, dsns); err != nil {
		return fmt.Errorf("%w (is MariaDB running? make runs `go run ./local/cmd/services ensure`)", err)
	}
	if mode == "demo" {
		step("seeding the demo data (fixed ids, idempotent)")
		if err := seedDemo(ctx, dsns); err != nil {
			return err
		}
	}

	bin, _ := filepath.Abs(filepath.Join(*workdir, "bin"))
	logs, _ := filepath.Abs(filepath.Join(*workdir, "logs"))
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	step("building the function server and DrainTriggers")
	if err := stack.Build(ctx, ".", bin); err != nil {
		return err
	}
	pubsubAddr := envOr("PUBSUB_EMULATOR_HOST", emulators.DefaultPubSubAddr)
	gcsHost := envOr("STORAGE_EMULATOR_HOST", fmt.Sprintf("%s:%d", emulators.DefaultGCSHost, emulators.DefaultGCSPort))
	var gcsPort uint16
	host, port, _ := strings.Cut(gcsHost, ":")
	fmt.Sscan(port, &gcsPort)
	var bucket config.Storage
	if err := config.Load(ctx, &bucket); err != nil {
		return err
	}
	// The signing key the functions sign download links with, in the
	// work directory so that an operator's reportctl (fetch -url) can sign
	// with it too. It replaces the key the stack makes for itself (Env
	// comes after the stack's variables, and the last one counts), whose
	// file the stack does not expose.
	work, _ := filepath.Abs(*workdir)
	_, keyFile, err := signing.NewSigningKey(work)
	if err != nil {
		return err
	}
	signEnv := []string{"SIGNED_URL_KEY_FILE=" + keyFile, "SIGNED_URL_ACCESS_ID=" + signing.SigningAccessID}
	step("starting the emulators, %d functions, the push relay, DrainTriggers and the sweeper", len(topology.Functions()))
	start := time.Now()
	st, err := stack.Start(ctx, stack.Config{
		BinDir: bin, Project: envOr("GOOGLE_CLOUD_PROJECT", "local-project"),
		PubSubAddr: pubsubAddr, GCSHost: host, GCSPort: gcsPort, Bucket: bucket.Bucket,
		NamePrefix: os.Getenv("PUBSUB_NAME_PREFIX"), Backoff: *backoff, SweepEvery: *sweepEvery, LogDir: logs, Log: log,
		Env: signEnv,
	})
	if err != nil {
		return fmt.Errorf("%w (is `make up` already running? its ports are taken)", err)
	}
	defer st.Close()
	step("stack up in %s: Pub/Sub emulator %s, Cloud Storage emulator %s, logs in %s", time.Since(start).Round(time.Millisecond), st.PubSubAddr, st.StorageURL, logs)
	for _, ep := range slices.Sorted(maps.Keys(st.URLs)) {
		fmt.Fprintf(os.Stderr, "    %-24s %-24s pid %d\n", ep, st.URLs[ep], st.PID(ep))
	}
	fmt.Fprintf(os.Stderr, "    %-24s %-24s pid %d\n", stack.DrainTriggers, "(consumes RabbitMQ)", st.PID(stack.DrainTriggers))
	fmt.Fprintf(os.Stderr, "    %-24s %-24s pid %d, called every %s\n", stack.Sweep, st.SweepURL, st.PID(stack.Sweep), *sweepEvery)
	fmt.Fprintln(os.Stderr, "    a process that exits is restarted on the same port, as Cloud Run replaces a crashed instance")
	os.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(st.StorageURL, "http://"))
	c, closeFn, err := client.FromEnv(ctx)
	if err != nil {
		return err
	}
	defer closeFn()

	if mode == "up" {
		envFile, err := writeCtlEnv(work, st, signEnv)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "\nRequest a report from another shell, e.g. each type's example:\n")
		for _, typ := range report.Types() {
			r, _ := report.Lookup(typ)
			fmt.Fprintf(os.Stderr, "  go run ./local/cmd/reportctl request -type %s -params '%s' -out %s.csv\n", typ, r.Example, typ)
		}
		fmt.Fprintf(os.Stderr, "For a signed link (reportctl fetch ID -url), export there what %s holds:\n", envFile)
		for _, kv := range ctlSigningEnv(signEnv) {
			fmt.Fprintf(os.Stderr, "  export %s\n", kv)
		}
		fmt.Fprintf(os.Stderr, "  (or: . %s)\nCtrl-C stops the stack.\n", envFile)
		<-ctx.Done()
		step("stopping")
		return nil
	}
	failed := 0
	for _, typ := range report.Types() {
		if err := demoOne(ctx, c, typ); err != nil {
			fmt.Fprintln(os.Stderr, "    ", err)
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d demo reports did not reach SUCCESS; see %s", failed, len(report.Types()), logs)
	}
	step("demo done: every report type reached SUCCESS")
	return nil
}

// ctlSigningEnv is what reportctl needs to sign links as the stack's
// functions do: the lifetime (SIGNED_URL_TTL from this environment, else
// an hour), the key file and the account name.
func ctlSigningEnv(signEnv []string) []string {
	return append([]string{"SIGNED_URL_TTL=" + envOr("SIGNED_URL_TTL", "1h")}, signEnv...)
}

// writeCtlEnv writes dir/reportctl.env: the export lines reportctl needs
// for st beyond its defaults, the signing variables and where the
// emulators listen (which matter when make up was given other addresses).
func writeCtlEnv(dir string, st *stack.Stack, signEnv []string) (string, error) {
	var b strings.Builder
	b.WriteString("# Written by `make up` for this run of the stack: `. " + filepath.Join(dir, "reportctl.env") + "` in another shell, then reportctl.\n")
	vars := append(ctlSigningEnv(signEnv),
		"STORAGE_EMULATOR_HOST="+strings.TrimPrefix(st.StorageURL, "http://"),
		"PUBSUB_EMULATOR_HOST="+st.PubSubAddr,
		"GOOGLE_CLOUD_PROJECT="+envOr("GOOGLE_CLOUD_PROJECT", "local-project"),
		"PUBSUB_NAME_PREFIX="+os.Getenv("PUBSUB_NAME_PREFIX"))
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	path := filepath.Join(dir, "reportctl.env")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func seedDemo(ctx context.Context, dsns schema.DSNs) error {
	user, err := serverenv.OpenDB(dsns.Sources["plt_user"])
	if err != nil {
		return err
	}
	defer user.Close()
	fund, err := serverenv.OpenDB(dsns.Sources["plt_fund"])
	if err != nil {
		return err
	}
	defer fund.Close()
	return seed.Apply(ctx, user, fund)
}

func demoOne(ctx context.Context, c *client.Client, typ string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	start := time.Now()
	rep, _ := report.Lookup(typ)
	id, err := c.Request(ctx, typ, []byte(rep.Example))
	if err != nil {
		return err
	}
	fmt.Printf("\n%s: record %d inserted, ID published to RabbitMQ\n", typ, id)
	rec, err := c.Wait(ctx, id, func(p client.Progress) {
		fmt.Printf("  %7.3fs  %s\n", time.Since(start).Seconds(), p)
	})
	if err != nil {
		return err
	}
	fmt.Printf("  status:    %s\n  file:      %s\n  rows:      %d\n  took:      %s (publish to %s)\n", rec.Status, rec.FilePath, rec.RowCount, time.Since(start).Round(time.Millisecond), rec.Status)
	if rec.Status != record.Success {
		return fmt.Errorf("%s: record %d ended %s: %s", typ, id, rec.Status, rec.FailReason)
	}
	body, err := c.Fetch(ctx, rec.FilePath)
	if err != nil {
		return err
	}
	lines := bytes.SplitAfter(body, []byte("\n"))
	fmt.Println("  first lines of the CSV:")
	for i, l := range lines {
		if i == 6 || len(l) == 0 {
			break
		}
		fmt.Printf("    %s", l)
	}
	return nil
}
