package config

import (
	"context"
	"strings"
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/report"
)

func TestCheckDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dsn string
		// wantErr is a part of the error; "" accepts the DSN.
		wantErr string
	}{
		{"plain TCP", "report_ro:secret@tcp(10.20.1.11:3306)/plt_user", ""},
		{"plain TCP with parameters", "u:p@tcp(db:3306)/plt_report?tls=true&timeout=3s", ""},
		{"Cloud SQL", "fanout-aggregate@cloudsql(db-project:europe-west1:reports)/plt_report", ""},
		{"Cloud SQL, domain-scoped project", "fanout-sweep@cloudsql(example.com:db-project:us-central1:reports)/plt_report", ""},
		{"Cloud SQL, tls=false", "fanout-sweep@cloudsql(db-project:europe-west1:reports)/plt_report?tls=false", ""},
		{"not a DSN", "mysql://u:p@db/plt_user", "not a MySQL DSN"},
		{"Cloud SQL, not a connection name", "fanout-sweep@cloudsql(reports)/plt_report", `Cloud SQL instance "reports" is not a connection name`},
		{"Cloud SQL, an address", "fanout-sweep@cloudsql(10.1.2.3:3307)/plt_report", "is not a connection name"},
		{"Cloud SQL with a password", "fanout-sweep:hunter2@cloudsql(db-project:europe-west1:reports)/plt_report", "carries no password"},
		{"Cloud SQL without a user", "cloudsql(db-project:europe-west1:reports)/plt_report", "needs the database user"},
		{"Cloud SQL without a database", "fanout-sweep@cloudsql(db-project:europe-west1:reports)/", "needs the database name"},
		{"Cloud SQL with tls", "fanout-sweep@cloudsql(db-project:europe-west1:reports)/plt_report?tls=true", "takes no tls parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckDSN("RECORD_DSN", tt.dsn)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckDSN(%q) = %v, want nil", tt.dsn, err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("CheckDSN(%q) = nil, want an error containing %q", tt.dsn, tt.wantErr)
			case err != nil && (!strings.HasPrefix(err.Error(), "RECORD_DSN: ") || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("CheckDSN(%q) = %q, want RECORD_DSN: …%s…", tt.dsn, err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Errorf("CheckDSN repeats the password: %q", err)
			}
		})
	}
}

// A bad DSN stops the function at startup with an error naming the
// variable: the record DSN of every config that reads it, and a
// listener's DSN_{DATABASE}.
func TestDSNErrorsNameTheVariable(t *testing.T) {
	bad := "fanout@cloudsql(db-project:europe-west1:reports)/"
	for _, cfg := range []func() any{
		func() any { return &Aggregator{} },
		func() any { return &DeadLetter{} },
		func() any { return &DrainTriggers{} },
		func() any { return &Sweep{} },
	} {
		clean(t)
		t.Setenv("RECORD_DSN", bad)
		c := cfg()
		err := Load(context.Background(), c)
		if err == nil || !strings.HasPrefix(err.Error(), "config: RECORD_DSN: ") {
			t.Errorf("Load(%T) with a bad RECORD_DSN = %v, want config: RECORD_DSN: …", c, err)
		}
	}
	clean(t)
	t.Setenv("DSN_PLT_USER", "fanout-user-tag:pw@cloudsql(db-project:europe-west1:users)/plt_user")
	_, err := LoadListener(context.Background(), report.Sources["ListenUserTagRelation"])
	if err == nil || !strings.HasPrefix(err.Error(), "config: DSN_PLT_USER: ") {
		t.Errorf("LoadListener with a bad DSN_PLT_USER = %v, want config: DSN_PLT_USER: …", err)
	}
}
