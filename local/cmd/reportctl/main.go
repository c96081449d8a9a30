// Command reportctl is the operator's command line, against the local
// stack (`make up`) or production (given the functions' environment
// variables). See local/reportctl for the commands and exit codes.
//
//	reportctl request -type withdraw_by_tag -params '{"tagIds":[3,10],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}' -out report.csv
//	reportctl status 42
//	reportctl list -status FAILED -since 1h
//	reportctl retry 42
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/local/reportctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := reportctl.Main(ctx, os.Args[1:], reportctl.IO{Stdout: os.Stdout, Stderr: os.Stderr, TTY: isTerminal(os.Stderr)}, client.FromEnv)
	stop()
	os.Exit(code)
}

// isTerminal reports whether f is a character device (a terminal), where
// the progress line can be rewritten in place.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
