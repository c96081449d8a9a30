// Command shim runs the MQ1 shim's consumer continuously: the local stack's
// stand-in for Cloud Scheduler calling DrainTriggers every minute.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := logging.Default
	var cfg config.Shim
	if err := config.Load(ctx, &cfg); err != nil {
		log.Error("shim config", "error", err)
		os.Exit(1)
	}
	c, err := trigger.NewConsumer(ctx, cfg, log)
	if err != nil {
		log.Error("shim start", "error", err)
		os.Exit(1)
	}
	defer c.Close()
	if err := c.Run(ctx); err != nil {
		log.Error("shim stopped", "error", err)
		os.Exit(1)
	}
}
