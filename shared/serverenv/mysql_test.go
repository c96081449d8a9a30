package serverenv_test

import (
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
)

// Every session runs in UTC, whatever the server's time zone: updated_at
// is filled by CURRENT_TIMESTAMP and read back as UTC. Against the real
// MariaDB.
func TestSessionsRunInUTC(t *testing.T) {
	t.Parallel()
	testdb.NeedMariaDB(t)
	db, err := serverenv.OpenDB(testdb.Server())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tz string
	if err := db.QueryRow("SELECT @@session.time_zone").Scan(&tz); err != nil {
		t.Fatal(err)
	}
	if tz != "+00:00" {
		t.Errorf("session time_zone = %q, want +00:00", tz)
	}
}
