// Command reportctl is what a person uses against `make up`: request a
// report (insert the record and publish its ID, as an upstream service
// does), watch its progress, and save the CSV.
//
//	reportctl request -type withdraw_by_tag -params '{"tagIds":[3,10],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}' -out report.csv
//	reportctl status 42
//	reportctl fetch 42 -out report.csv
//	reportctl publish '42'        # a raw trigger body
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "reportctl:", err)
		os.Exit(1)
	}
}

func usage() error {
	return errors.New(`usage:
  reportctl request -type TYPE -params JSON [-out FILE] [-timeout 5m]
  reportctl status ID
  reportctl fetch ID [-out FILE]
  reportctl publish BODY
report types: ` + fmt.Sprint(report.Types()))
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usage()
	}
	c, closeFn, err := client.FromEnv(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	typ := fs.String("type", "withdraw_by_tag", "report type")
	params := fs.String("params", "", "params JSON")
	out := fs.String("out", "", "write the CSV here (default: stdout)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait")
	switch args[0] {
	case "request":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *params == "" {
			return errors.New("request: -params is required")
		}
		id, err := c.Request(ctx, *typ, []byte(*params))
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "record %d requested (%s)\n", id, *typ)
		return wait(ctx, c, id, *timeout, *out)
	case "status", "fetch":
		if len(args) < 2 {
			return usage()
		}
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return fmt.Errorf("%s: bad id %q", args[0], args[1])
		}
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		rec, err := c.Records.Get(ctx, id)
		if err != nil {
			return err
		}
		if args[0] == "status" {
			printRecord(rec)
			return nil
		}
		return save(ctx, c, rec, *out)
	case "publish":
		if len(args) < 2 {
			return usage()
		}
		return c.Publish(ctx, []byte(args[1]))
	}
	return usage()
}

func wait(ctx context.Context, c *client.Client, id int64, timeout time.Duration, out string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	rec, err := c.Wait(ctx, id, func(p client.Progress) {
		fmt.Fprintf(os.Stderr, "  %6.2fs  %s\n", time.Since(start).Seconds(), p)
	})
	if err != nil {
		return err
	}
	printRecord(rec)
	if rec.Status != record.Success {
		return fmt.Errorf("record %d ended %s", id, rec.Status)
	}
	return save(ctx, c, rec, out)
}

func printRecord(rec record.Record) {
	fmt.Fprintf(os.Stderr, "record %d: %s", rec.ID, rec.Status)
	if rec.FilePath != "" {
		fmt.Fprintf(os.Stderr, ", %d rows at %s", rec.RowCount, rec.FilePath)
	}
	if rec.FailReason != "" {
		fmt.Fprintf(os.Stderr, ", reason: %s", rec.FailReason)
	}
	fmt.Fprintln(os.Stderr)
}

func save(ctx context.Context, c *client.Client, rec record.Record, out string) error {
	if rec.FilePath == "" {
		return fmt.Errorf("record %d has no file (%s)", rec.ID, rec.Status)
	}
	body, err := c.Fetch(ctx, rec.FilePath)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(body)
		return err
	}
	if err := os.WriteFile(out, body, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", out, len(body))
	return nil
}
