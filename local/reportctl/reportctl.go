// Package reportctl is the operator's command line: request a report and
// watch it, read a record's status and progress, fetch its CSV, list
// recent records, retry a FAILED one, cancel a running one, and look after
// the parked triggers. It reads the same environment variables as the
// functions, so it works against the local stack and production alike.
// local/cmd/reportctl is its main; tests run Main in-process or the binary.
package reportctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1 // the report FAILED, the request was refused, or another error
	ExitUsage       = 2
	ExitUnreachable = 3 // a server could not be reached
	ExitNotFound    = 4 // no such record, object, parked trigger or parked message
)

// CancelReason is the fail_reason of a record the operator cancelled.
var CancelReason = failreason.Cancelled.Text()

// Opener builds the client (client.FromEnv in the binary).
type Opener func(ctx context.Context) (*client.Client, func(), error)

// IO is where a run writes.
type IO struct {
	Stdout, Stderr io.Writer
	// TTY rewrites request's progress in place; otherwise each change is a
	// new line.
	TTY bool
	// Tick is how often request polls (default 200 ms).
	Tick time.Duration
}

// Usage is the command line's help.
const Usage = `usage: reportctl COMMAND [flags]

  request -type TYPE -params JSON [-out FILE] [-timeout 5m]
                        insert a PENDING record, publish its ID, show progress until it ends,
                        then save the CSV (to -out, else stdout)
  status ID             status, stage, listeners done and missing, fail reason, file, rows, times
  fetch ID [-out FILE]  download the CSV (to -out, else stdout)
  fetch ID -url         print a V4 signed link to the CSV, valid for SIGNED_URL_TTL (locally also
                        SIGNED_URL_KEY_FILE and SIGNED_URL_ACCESS_ID, as make up prints them)
  list [-status S] [-since 24h] [-limit 50]
                        recent records, newest first (-since 0: any age)
  retry ID              FAILED records only: a new record with the same type and params, requested
  cancel ID             a PENDING or PROCESSING record ends FAILED ("cancelled by operator"),
                        its hash removed and its completion event published
  parked [-limit 100] [-requeue rabbitmq:KEY | -requeue pubsub:MESSAGE_ID]
                        list the parked triggers (RabbitMQ) and messages (Pub/Sub) with their
                        reasons, up to -limit of each; after a fix, -requeue with what the listing
                        shows under REQUEUE moves that trigger back to the trigger queue, or that
                        message back to the topic it was parked from
  publish BODY          publish a raw trigger body

Every command takes -json: one JSON object on stdout (an array for list and parked; for request
the final record; a CSV only through -out); a refusal or error is {"error": "...", "exitCode": N}
on stdout as well as the message on stderr.
Exit codes: 0 ok, 1 report FAILED or request refused, 2 usage, 3 a server unreachable, 4 not found.
Servers come from the functions' variables (RECORD_DSN, REDIS_ADDR, AMQP_URL, TRIGGER_QUEUE,
PARKED_QUEUE, GOOGLE_CLOUD_PROJECT, PUBSUB_EMULATOR_HOST, PUBSUB_NAME_PREFIX, ...), by default
the local stack's (make up).
`

// exitError carries an exit code; quiet means the message was already shown.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error {
	return &exitError{ExitUsage, fmt.Errorf(format, a...)}
}

func refusedf(format string, a ...any) error {
	return &exitError{ExitFailed, fmt.Errorf(format, a...)}
}

// errReportFailed: the report ended FAILED (already printed).
var errReportFailed = errors.New("report FAILED")

// Code maps an error to its exit code.
func Code(err error) int {
	var ee *exitError
	var un *client.Unreachable
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &un):
		return ExitUnreachable
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, record.ErrNotFound), errors.Is(err, client.ErrObjectNotFound), errors.Is(err, client.ErrNoParked):
		return ExitNotFound
	}
	return ExitFailed
}

// Main runs one command and returns its exit code.
func Main(ctx context.Context, args []string, o IO, open Opener) int {
	if o.Tick == 0 {
		o.Tick = 200 * time.Millisecond
	}
	asJSON, err := run(ctx, args, o, open)
	if err != nil && !errors.Is(err, errReportFailed) && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(o.Stderr, "reportctl:", err)
		if Code(err) == ExitUsage {
			fmt.Fprintln(o.Stderr, "(`reportctl help` lists the commands and their flags)")
		}
		if asJSON {
			// A script reading stdout learns why, not only that it failed.
			// A FAILED report is not a refusal: its record was printed.
			(&cmd{o: o}).printJSON(Refusal{Error: err.Error(), ExitCode: Code(err)})
		}
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	return Code(err)
}

// Refusal is what a command run with -json prints on stdout when it
// refuses or fails (the message is also on stderr).
type Refusal struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exitCode"`
}

// wantsJSON reports whether args ask for -json, for refusals that come
// before the flags are parsed, or from parsing them.
func wantsJSON(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if strings.HasPrefix(a, "-") && name == "json" {
			if b, err := strconv.ParseBool(val); !hasVal || err == nil && b {
				return true
			}
		}
	}
	return false
}

// cmd is one command's state.
type cmd struct {
	o      IO
	c      *client.Client
	asJSON bool
}

// run runs one command and reports whether its output is JSON.
func run(ctx context.Context, args []string, o IO, open Opener) (asJSON bool, err error) {
	if len(args) == 0 {
		return false, usagef("no command")
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "-help" || name == "--help" {
		fmt.Fprint(o.Stdout, Usage)
		return false, nil
	}
	fs := flag.NewFlagSet("reportctl "+name, flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	k := &cmd{o: o}
	fs.BoolVar(&k.asJSON, "json", false, "print one JSON object (an array for list and parked) on stdout")
	var do func(ctx context.Context, pos []string) error
	switch name {
	case "request":
		typ := fs.String("type", "withdraw_by_tag", "report type: "+strings.Join(report.Types(), ", "))
		params := fs.String("params", "", "params JSON, e.g. "+`{"tagIds":[3,7],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`)
		out := fs.String("out", "", "write the CSV here (default: stdout, unless -json)")
		timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the report to end")
		do = func(ctx context.Context, pos []string) error {
			if len(pos) != 0 {
				return usagef("request takes no arguments, got %q", pos)
			}
			if *params == "" {
				return usagef("request: -params is required")
			}
			if !json.Valid([]byte(*params)) {
				return usagef("request: -params is not JSON: %s", *params)
			}
			return k.request(ctx, *typ, []byte(*params), *out, *timeout)
		}
	case "status":
		do = func(ctx context.Context, pos []string) error {
			id, err := oneID(name, pos)
			if err != nil {
				return err
			}
			return k.status(ctx, id)
		}
	case "fetch":
		out := fs.String("out", "", "write the CSV here (default: stdout, unless -json)")
		link := fs.Bool("url", false, "print a signed link to the CSV instead (valid for SIGNED_URL_TTL)")
		do = func(ctx context.Context, pos []string) error {
			id, err := oneID(name, pos)
			if err != nil {
				return err
			}
			if *link && *out != "" {
				return usagef("fetch -url prints a link; it takes no -out")
			}
			if k.asJSON && *out == "" && !*link {
				return usagef("fetch -json writes the CSV only to -out FILE")
			}
			return k.fetch(ctx, id, *out, *link)
		}
	case "list":
		status := fs.String("status", "", "only records in this status (PENDING, PROCESSING, SUCCESS, FAILED)")
		since := fs.Duration("since", 24*time.Hour, "only records created this long ago or later; 0 for any age")
		limit := fs.Int("limit", 50, "at most this many records (1 to 1000)")
		do = func(ctx context.Context, pos []string) error {
			if len(pos) != 0 {
				return usagef("list takes no arguments, got %q", pos)
			}
			q := record.Query{Since: *since, Limit: *limit}
			if *status != "" {
				s, err := ParseStatus(*status)
				if err != nil {
					return err
				}
				q.Status = &s
			}
			if *limit < 1 || *limit > 1000 {
				return usagef("list: -limit %d is not between 1 and 1000", *limit)
			}
			if *since < 0 {
				return usagef("list: -since %s is negative", *since)
			}
			return k.list(ctx, q)
		}
	case "retry":
		do = func(ctx context.Context, pos []string) error {
			id, err := oneID(name, pos)
			if err != nil {
				return err
			}
			return k.retry(ctx, id)
		}
	case "cancel":
		do = func(ctx context.Context, pos []string) error {
			id, err := oneID(name, pos)
			if err != nil {
				return err
			}
			return k.cancel(ctx, id)
		}
	case "parked":
		limit := fs.Int("limit", 100, "list at most this many")
		requeue := fs.String("requeue", "", "after a fix, move one back, as listed under REQUEUE: rabbitmq:KEY, the trigger, to the trigger queue; pubsub:MESSAGE_ID, the message, to the topic it was parked from")
		do = func(ctx context.Context, pos []string) error {
			if len(pos) != 0 {
				return usagef("parked takes no arguments, got %q", pos)
			}
			if *limit < 1 {
				return usagef("parked: -limit %d is not positive", *limit)
			}
			if *requeue == "" {
				return k.parked(ctx, *limit)
			}
			if id, ok := strings.CutPrefix(*requeue, client.InPubSub+":"); ok {
				if id == "" {
					return usagef("parked: -requeue pubsub: needs the message ID, as listed")
				}
				return k.requeueMessage(ctx, id)
			}
			key, ok := strings.CutPrefix(*requeue, client.InRabbitMQ+":")
			if !ok || key == "" {
				// Not a position: another listing running at the same time
				// holds some triggers and shifts the rest.
				return usagef("parked: -requeue %q: give what `reportctl parked` lists under REQUEUE (rabbitmq:KEY or pubsub:MESSAGE_ID), not a position", *requeue)
			}
			return k.requeue(ctx, key)
		}
	case "publish":
		do = func(ctx context.Context, pos []string) error {
			if len(pos) != 1 {
				return usagef("publish takes one BODY argument")
			}
			return k.publish(ctx, pos[0])
		}
	default:
		return wantsJSON(args[1:]), usagef("unknown command %q", name)
	}
	pos, err := parse(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, err
		}
		return k.asJSON || wantsJSON(args[1:]), &exitError{ExitUsage, err}
	}
	c, closeFn, err := open(ctx)
	if err != nil {
		return k.asJSON, err
	}
	defer closeFn()
	k.c = c
	return k.asJSON, do(ctx, pos)
}

// parse parses flags anywhere among the arguments ("status 42 -json" as
// well as "status -json 42") and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func oneID(name string, pos []string) (int64, error) {
	if len(pos) != 1 {
		return 0, usagef("%s takes one record ID", name)
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id < 1 {
		return 0, usagef("%s: %q is not a record ID", name, pos[0])
	}
	return id, nil
}

// ParseStatus reads a status by name (any case) or number.
func ParseStatus(s string) (record.Status, error) {
	for st := record.Pending; st <= record.Failed; st++ {
		if strings.EqualFold(s, st.String()) || s == strconv.Itoa(int(st)) {
			return st, nil
		}
	}
	return 0, usagef("unknown status %q: PENDING, PROCESSING, SUCCESS or FAILED", s)
}

// printJSON writes v as one indented JSON value.
func (k *cmd) printJSON(v any) error {
	enc := json.NewEncoder(k.o.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeOut writes body to path, or to stdout when path is "".
func (k *cmd) writeOut(path string, body []byte) error {
	if path == "" {
		_, err := k.o.Stdout.Write(body)
		return err
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(k.o.Stderr, "wrote %s (%d bytes)\n", path, len(body))
	return nil
}
