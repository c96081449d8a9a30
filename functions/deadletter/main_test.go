package deadletter

import (
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/fanoutexport/fanoutexport/local/emulators"
)

// DeadLetter deletes a failed report's segments from Cloud Storage:
// its tests give it fake-gcs-server through STORAGE_EMULATOR_HOST, which
// must be set before any client is made, hence TestMain.
func TestMain(m *testing.M) {
	srv, err := emulators.StartGCS("127.0.0.1", 0, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "start fake-gcs-server:", err)
		os.Exit(1)
	}
	u, err := url.Parse(srv.URL())
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake-gcs-server URL:", err)
		os.Exit(1)
	}
	if err := os.Setenv("STORAGE_EMULATOR_HOST", u.Host); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}
