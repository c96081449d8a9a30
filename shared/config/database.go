package config

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/go-sql-driver/mysql"
)

// CloudSQLNet is the protocol of a DSN that names a Cloud SQL instance
// instead of an address:
//
//	SERVICE_ACCOUNT@cloudsql(PROJECT:REGION:INSTANCE)/DATABASE
//
// Such a database is reached through the Cloud SQL Go connector
// (shared/serverenv): the instance's private IP on port 3307, the
// connector's own TLS, and IAM database authentication as the function's
// service account, so the DSN holds no password (the user is the account's
// email up to the @). Every other DSN is a plain go-sql-driver DSN
// (user:pass@tcp(host:3306)/db) dialled over TCP.
const CloudSQLNet = "cloudsql"

// A Cloud SQL instance connection name: PROJECT:REGION:INSTANCE, where a
// domain-scoped project has a colon of its own (example.com:project).
var connectionName = regexp.MustCompile(`^[a-z][a-z0-9.-]*(:[a-z][a-z0-9-]*)?:[a-z]+-[a-z]+[0-9]+:[a-z][a-z0-9-]*$`)

// CheckDSN validates the DSN read from variable name. Its errors name the
// variable and never repeat the DSN, which may hold a password.
func CheckDSN(name, dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's messages say what is wrong without echoing the DSN.
		return fmt.Errorf("%s: not a MySQL DSN (user:pass@tcp(host:3306)/db or SERVICE_ACCOUNT@cloudsql(PROJECT:REGION:INSTANCE)/db): %w", name, err)
	}
	if cfg.Net != CloudSQLNet {
		return nil
	}
	switch {
	case !connectionName.MatchString(cfg.Addr):
		return fmt.Errorf("%s: Cloud SQL instance %q is not a connection name PROJECT:REGION:INSTANCE", name, cfg.Addr)
	case cfg.Passwd != "":
		return errors.New(name + ": a Cloud SQL DSN carries no password: the connector signs in as the function's service account (IAM database authentication)")
	case cfg.User == "":
		return errors.New(name + ": a Cloud SQL DSN needs the database user: the service account's email up to the @")
	case cfg.DBName == "":
		return errors.New(name + ": a Cloud SQL DSN needs the database name after the /")
	case cfg.TLSConfig != "" && cfg.TLSConfig != "false":
		return errors.New(name + ": a Cloud SQL DSN takes no tls parameter: the connector encrypts the connection itself")
	}
	return nil
}

func (r Records) validate() error { return CheckDSN("RECORD_DSN", r.DSN) }
