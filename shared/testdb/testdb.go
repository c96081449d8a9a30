// Package testdb gives a test its own throwaway MariaDB databases on the
// shared server, dropped when the test ends, so tests can run in parallel.
// It fails, never skips, when the server is not there (make test starts
// it), except under -short, where every test that needs a server skips
// through NeedMariaDB, NeedRedis or NeedRabbitMQ, so `go test -short ./...`
// runs on a machine without any.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/schema"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

// Server is the DSN prefix of the shared server (TEST_MYSQL_BASE).
func Server() string {
	if v := os.Getenv("TEST_MYSQL_BASE"); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// Addresses of the shared servers the tests use (make test starts them).
const (
	RedisAddr = "127.0.0.1:6379"
	AMQPURL   = "amqp://guest:guest@127.0.0.1:5672/"
)

// NeedMariaDB skips t under -short: t needs the MariaDB server. New and
// Pipeline call it, so a test that gets its databases there need not.
func NeedMariaDB(t testing.TB) {
	t.Helper()
	need(t, "MariaDB at 127.0.0.1:3306")
}

// NeedRedis skips t under -short: t needs the Redis server at RedisAddr.
func NeedRedis(t testing.TB) {
	t.Helper()
	need(t, "Redis at "+RedisAddr)
}

// NeedRabbitMQ skips t under -short: t needs the RabbitMQ server.
func NeedRabbitMQ(t testing.TB) {
	t.Helper()
	need(t, "RabbitMQ at 127.0.0.1:5672")
}

func need(t testing.TB, server string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s: skipped under -short (make test runs it)", server)
	}
}

// UniqueName returns prefix_<random hex>, for databases, keys and queues.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + "_" + hex.EncodeToString(b)
}

// New creates a database (utf8mb4, general_ci, so collation-sensitive tests
// do not depend on the server's default), runs ddl in it and returns it.
func New(t testing.TB, prefix string, ddl ...string) *sql.DB {
	t.Helper()
	NeedMariaDB(t)
	ctx := context.Background()
	name := UniqueName(t, prefix)
	admin, err := serverenv.OpenDB(Server())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"); err != nil {
		t.Fatalf("MariaDB at %s: %v", Server(), err)
	}
	t.Cleanup(func() {
		admin, err := serverenv.OpenDB(Server())
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE "+name); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	db, err := serverenv.OpenDB(Server() + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range ddl {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return db
}

// Pipeline creates the record database and every source database, with
// their tables, as {prefix}_<random>_plt_report and so on.
func Pipeline(t testing.TB, prefix string) schema.DSNs {
	t.Helper()
	NeedMariaDB(t)
	base := Server() + UniqueName(t, prefix)
	d := schema.DSNs{Record: base + "_plt_report", Sources: map[string]string{}}
	for _, db := range report.Databases() {
		d.Sources[db] = base + "_" + db
	}
	if err := schema.Ensure(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := schema.Drop(context.Background(), d); err != nil {
			t.Errorf("drop databases: %v", err)
		}
	})
	return d
}
