// Command fnserver serves one function with the functions-framework, as
// Cloud Functions does: FUNCTION_TARGET picks the entry point, PORT the port.
package main

import (
	"log/slog"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/fanoutexport/fanoutexport"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
		slog.Error("functions-framework stopped", "error", err)
		os.Exit(1)
	}
}
