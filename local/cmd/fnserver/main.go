// Command fnserver serves one function with the functions-framework, as
// Cloud Functions does: FUNCTION_TARGET picks the entry point, PORT the
// port. On SIGTERM (how Cloud Run stops an instance) it closes the
// function's clients before exiting.
package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/fanoutexport/fanoutexport"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-stop
		if err := fanoutexport.Close(); err != nil {
			slog.Error("closing the function's clients", "error", err)
		}
		os.Exit(0)
	}()
	if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
		slog.Error("functions-framework stopped", "error", err)
		os.Exit(1)
	}
}
