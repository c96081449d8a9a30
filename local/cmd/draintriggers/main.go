// Command draintriggers runs DrainTriggers' consumer and the completion forwarder
// continuously: the local stack's stand-in for Cloud Scheduler calling
// DrainTriggers every minute.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/tracing"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := logging.Default
	// The consumer's environment installs the process's tracer provider;
	// the process flushes it when it stops (SIGTERM from the stack).
	defer flushSpans()
	var cfg config.DrainTriggers
	if err := config.Load(ctx, &cfg); err != nil {
		log.Error("DrainTriggers config", "error", err)
		os.Exit(1)
	}
	c, err := trigger.NewConsumer(ctx, cfg, log)
	if err != nil {
		log.Error("DrainTriggers start", "error", err)
		os.Exit(1)
	}
	defer c.Close()
	f, err := completion.NewForwarder(ctx, cfg, c.Dispatcher.Bus, log)
	if err != nil {
		log.Error("completion forwarder start", "error", err)
		os.Exit(1)
	}
	defer f.Close()
	var wg sync.WaitGroup
	var ferr error
	wg.Go(func() { ferr = f.Run(ctx) })
	err = c.Run(ctx)
	wg.Wait()
	if err := errors.Join(err, ferr); err != nil {
		log.Error("DrainTriggers stopped", "error", err)
		flushSpans()
		os.Exit(1)
	}
}

// flushSpans exports the spans the process still batches.
func flushSpans() {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if err := tracing.Shutdown(ctx); err != nil {
		logging.Default.Error("flushing spans", "error", err)
	}
}
