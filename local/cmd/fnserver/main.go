// Command fnserver serves one function with the functions-framework, as
// Cloud Functions does: FUNCTION_TARGET picks the entry point, PORT the
// port. On SIGTERM (how Cloud Run stops an instance) the root package, as
// in production, flushes the process's spans and closes the function's
// clients before exiting; on Ctrl-C this does the same.
//
// FNSERVER_PPROF, set to an address ("127.0.0.1:0" for any free port),
// serves net/http/pprof there and logs where ("pprof serving"): profile a
// function of the local stack with
// go tool pprof 'http://ADDR/debug/pprof/profile?seconds=10'.
package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
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
	if addr := os.Getenv("FNSERVER_PPROF"); addr != "" {
		if err := servePprof(addr); err != nil {
			slog.Error("FNSERVER_PPROF", "error", err)
			os.Exit(1)
		}
	}
	if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
		slog.Error("functions-framework stopped", "error", err)
		os.Exit(1)
	}
}

// servePprof serves net/http/pprof on addr, on a mux of its own (the
// functions-framework's has only the function).
func servePprof(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	slog.Info("pprof serving", "function", os.Getenv("FUNCTION_TARGET"), "url", "http://"+l.Addr().String()+"/debug/pprof/")
	go func() {
		if err := http.Serve(l, mux); err != nil {
			slog.Error("pprof stopped", "error", err)
		}
	}()
	return nil
}
