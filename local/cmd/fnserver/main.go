// Command fnserver serves one function with the functions-framework, as
// Cloud Functions does: FUNCTION_TARGET picks the entry point, PORT the
// port. On SIGTERM (how Cloud Run stops an instance) the root package, as
// in production, flushes the process's spans and closes the function's
// clients before exiting; on Ctrl-C this does the same.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/fanoutexport/fanoutexport"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	// SIGTERM is the root package's (it must be in production, where the
	// buildpack writes main); two handlers would race to exit.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), fanoutexport.ShutdownTimeout)
		defer cancel()
		if err := fanoutexport.Shutdown(ctx); err != nil {
			slog.Error("shutting down on interrupt", "error", err)
		}
		os.Exit(0)
	}()
	if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
		slog.Error("functions-framework stopped", "error", err)
		os.Exit(1)
	}
}
