package serverenv_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/cloudsqlconn"
	"golang.org/x/oauth2"

	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

// adminAPI is a stand-in for the Cloud SQL Admin API that records the
// paths it is asked for and answers each with 403, as the real API does
// for an identity without roles/cloudsql.client.
type adminAPI struct {
	mu    sync.Mutex
	paths []string
}

func (a *adminAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.paths = append(a.paths, r.URL.Path)
	a.mu.Unlock()
	http.Error(w, `{"error":{"code":403,"message":"not authorized"}}`, http.StatusForbidden)
}

func (a *adminAPI) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...)
}

// A Cloud SQL DSN dials through the connector: it asks the Admin API for
// the instance named in the DSN (and no TCP address is dialled); Google
// itself is not reachable here, so a local Admin API answers. Not
// parallel: it swaps the connector's options.
func TestCloudSQLDSNDialsThroughTheConnector(t *testing.T) {
	api := &adminAPI{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "test-token", Expiry: time.Now().Add(time.Hour)})
	t.Cleanup(serverenv.SetCloudSQLTestOptions(
		cloudsqlconn.WithAdminAPIEndpoint(srv.URL+"/"),
		cloudsqlconn.WithIAMAuthNTokenSources(ts, ts),
	))

	db, err := serverenv.OpenDBPool("fanout-aggregate@cloudsql(db-project:europe-west1:reports)/plt_report", 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = db.PingContext(ctx)
	if err == nil {
		t.Fatal("Ping through a refusing Admin API succeeded")
	}
	if !strings.Contains(err.Error(), "cloud sql dial db-project:europe-west1:reports") {
		t.Errorf("Ping error %q does not come from the Cloud SQL dialer", err)
	}
	found := false
	for _, p := range api.seen() {
		found = found || strings.Contains(p, "projects/db-project/instances/reports/connectSettings")
	}
	if !found {
		t.Errorf("the Admin API was not asked for the instance's connect settings; paths: %q", api.seen())
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close (closes the dialer too): %v", err)
	}
}

// A plain DSN never touches the connector: a pool opens without any
// Google credentials, and dials the address over TCP.
func TestPlainDSNDialsTCP(t *testing.T) {
	api := &adminAPI{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	t.Cleanup(serverenv.SetCloudSQLTestOptions(cloudsqlconn.WithAdminAPIEndpoint(srv.URL + "/")))
	// A port nothing listens on: the dial fails fast with a TCP error.
	ln := httptest.NewServer(http.NotFoundHandler())
	addr := ln.Listener.Addr().String()
	ln.Close()
	db, err := serverenv.OpenDBPool("u:p@tcp("+addr+")/plt_user?timeout=2s", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Ping()
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("Ping of a closed port = %v, want a TCP connect error", err)
	}
	if p := api.seen(); len(p) != 0 {
		t.Errorf("a plain DSN asked the Cloud SQL Admin API for %q", p)
	}
}
