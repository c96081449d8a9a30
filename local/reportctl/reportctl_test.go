package reportctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/local/reportctl"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
)

// noServers is an opener whose client has no server behind it: every
// case below must end before anything dials.
func noServers(context.Context) (*client.Client, func(), error) {
	return &client.Client{}, func() {}, nil
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		code int
		say  string
	}{
		{nil, 2, "no command"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"help"}, 0, ""},
		{[]string{"status"}, 2, "one record ID"},
		{[]string{"status", "1", "2"}, 2, "one record ID"},
		{[]string{"status", "x"}, 2, `"x" is not a record ID`},
		{[]string{"status", "-3"}, 2, "flag provided but not defined"},
		{[]string{"fetch", "1", "-json"}, 2, "only to -out"},
		{[]string{"fetch", "1", "-url", "-out", "x.csv"}, 2, "takes no -out"},
		{[]string{"fetch", "1", "-url"}, 2, "SIGNED_URL_TTL is not set"},
		{[]string{"fetch", "1", "-url", "-json"}, 2, "SIGNED_URL_TTL is not set"},
		{[]string{"list", "-status", "DONE"}, 2, `unknown status "DONE"`},
		{[]string{"list", "-limit", "0"}, 2, "-limit 0"},
		{[]string{"list", "-since", "-1h"}, 2, "negative"},
		{[]string{"list", "extra"}, 2, "no arguments"},
		{[]string{"request"}, 2, "-params is required"},
		{[]string{"request", "-params", "{"}, 2, "not JSON"},
		{[]string{"parked", "-requeue", "-1"}, 2, "not a position"},
		{[]string{"parked", "-requeue", "2"}, 2, "not a position"},
		{[]string{"parked", "-requeue", "x"}, 2, "rabbitmq:KEY or pubsub:MESSAGE_ID"},
		{[]string{"parked", "-requeue", "rabbitmq:"}, 2, "not a position"},
		{[]string{"parked", "-requeue", "pubsub:"}, 2, "needs the message ID"},
		{[]string{"publish"}, 2, "one BODY"},
		{[]string{"cancel", "-h"}, 0, "-json"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			code := reportctl.Main(context.Background(), tt.args, reportctl.IO{Stdout: &out, Stderr: &errb}, noServers)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.say) {
				t.Errorf("stderr does not say %q:\n%s", tt.say, errb.String())
			}
		})
	}
}

func TestCode(t *testing.T) {
	t.Parallel()
	un := &client.Unreachable{Server: client.Redis, Where: "127.0.0.1:1", Err: errors.New("refused")}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"other", errors.New("boom"), 1},
		{"unreachable", un, 3},
		{"unreachable, wrapped", fmt.Errorf("cancel: %w", un), 3},
		{"record not found", fmt.Errorf("get: %w", record.ErrNotFound), 4},
		{"object not found", fmt.Errorf("fetch: %w", client.ErrObjectNotFound), 4},
		{"no parked trigger", fmt.Errorf("requeue: %w", client.ErrNoParked), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := reportctl.Code(tt.err); got != tt.want {
				t.Errorf("Code(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]record.Status{"pending": record.Pending, "PROCESSING": record.Processing, "Success": record.Success, "3": record.Failed} {
		if got, err := reportctl.ParseStatus(in); err != nil || got != want {
			t.Errorf("ParseStatus(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "4", "done", "-1"} {
		if _, err := reportctl.ParseStatus(in); reportctl.Code(err) != reportctl.ExitUsage {
			t.Errorf("ParseStatus(%q) = %v, want a usage error", in, err)
		}
	}
}

// record.List against a real database: filters, newest first, limit.
func TestList(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, "rctl", record.DDL)
	repo := record.NewRepo(db)
	ctx := context.Background()
	var ids []int64
	for i := range 5 {
		id, err := repo.Insert(ctx, "withdraw_by_tag", []byte(`{"n":`+fmt.Sprint(i)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// ids[0] is two days old; ids[1] FAILED; ids[2] PROCESSING.
	if _, err := db.ExecContext(ctx, `UPDATE file_download_record SET created_at = created_at - INTERVAL 2 DAY WHERE id = ?`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.MarkFailed(ctx, ids[1], "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.MarkProcessing(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	st := func(s record.Status) *record.Status { return &s }
	tests := []struct {
		name string
		q    record.Query
		want []int64
	}{
		{"all", record.Query{Limit: 50}, []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"last day", record.Query{Since: 24 * time.Hour, Limit: 50}, []int64{ids[4], ids[3], ids[2], ids[1]}},
		{"limit", record.Query{Limit: 2}, []int64{ids[4], ids[3]}},
		{"failed", record.Query{Status: st(record.Failed), Limit: 50}, []int64{ids[1]}},
		{"pending in the last day", record.Query{Status: st(record.Pending), Since: 24 * time.Hour, Limit: 50}, []int64{ids[4], ids[3]}},
		{"success", record.Query{Status: st(record.Success), Limit: 50}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			recs, err := repo.List(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, r := range recs {
				got = append(got, r.ID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("List(%+v) IDs (-want +got):\n%s", tt.q, diff)
			}
		})
	}
	recs, err := repo.List(ctx, record.Query{Status: st(record.Failed), Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	one, err := repo.Get(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]record.Record{one}, recs); diff != "" {
		t.Errorf("List returns other columns than Get (-Get +List):\n%s", diff)
	}
	if _, err := repo.List(ctx, record.Query{}); err == nil {
		t.Error("List with limit 0 succeeded")
	}
}

// Under -json every command's refusal is one JSON object on stdout,
// {"error": …, "exitCode": N}, as well as the message on stderr: a script
// piping stdout to jq learns why. Without -json stdout stays empty.
func TestJSONRefusals(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs MariaDB and RabbitMQ")
	}
	db := testdb.New(t, "rctljson", record.DDL)
	repo := record.NewRepo(db)
	ctx := context.Background()
	failed, err := repo.Insert(ctx, "withdraw_by_tag", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.MarkFailed(ctx, failed, "boom"); err != nil {
		t.Fatal(err)
	}
	pending, err := repo.Insert(ctx, "withdraw_by_tag", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	// The local RabbitMQ, or a port where nothing listens.
	opener := func(amqpURL string) reportctl.Opener {
		return func(context.Context) (*client.Client, func(), error) {
			return &client.Client{Records: repo, DB: db, AMQPURL: amqpURL, TriggerQueue: "rctljson.unused",
				Where: map[client.Server]string{client.RabbitMQ: amqpURL}}, func() {}, nil
		}
	}
	live, dead := opener("amqp://guest:guest@127.0.0.1:5672/"), opener("amqp://guest:guest@127.0.0.1:1/")
	id := func(n int64) string { return fmt.Sprint(n) }
	out := t.TempDir() + "/x.csv"
	tests := []struct {
		args []string
		open reportctl.Opener
		code int
		say  string
	}{
		{[]string{"frobnicate", "-json"}, live, 2, `unknown command "frobnicate"`},
		{[]string{"request", "-json"}, live, 2, "-params is required"},
		{[]string{"request", "-json", "-params", "{}"}, dead, 3, "RabbitMQ"},
		{[]string{"status", "-json", "-bogus"}, live, 2, "flag provided but not defined: -bogus"},
		{[]string{"status", "-json", "999999999"}, live, 4, "999999999"},
		{[]string{"fetch", id(failed), "-json", "-out", out}, live, 1, "FAILED, so it has no file: boom"},
		{[]string{"fetch", id(pending), "-json", "-out", out}, live, 1, "no file yet"},
		{[]string{"list", "-json", "-limit", "0"}, live, 2, "-limit 0"},
		{[]string{"retry", id(pending), "-json"}, live, 1, "only FAILED records are retried"},
		{[]string{"retry", id(failed), "-json"}, dead, 3, "RabbitMQ"},
		{[]string{"cancel", id(failed), "-json"}, live, 1, "already FAILED"},
		{[]string{"cancel", "-json=true", "x"}, live, 2, `"x" is not a record ID`},
		{[]string{"parked", "-json", "-requeue", "x"}, live, 2, "-requeue"},
		{[]string{"parked", "-json"}, dead, 3, "RabbitMQ"},
		{[]string{"publish", "-json"}, live, 2, "one BODY"},
		{[]string{"publish", "-json", "5"}, dead, 3, "RabbitMQ"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := reportctl.Main(ctx, tt.args, reportctl.IO{Stdout: &stdout, Stderr: &stderr}, tt.open)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			dec := json.NewDecoder(&stdout)
			dec.DisallowUnknownFields()
			var got struct {
				Error    string `json:"error"`
				ExitCode int    `json:"exitCode"`
			}
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("stdout is not a JSON refusal: %v\nstdout:\n%s", err, stdout.String())
			}
			if dec.More() {
				t.Errorf("stdout holds more than one JSON value:\n%s", stdout.String())
			}
			if got.ExitCode != code || !strings.Contains(got.Error, tt.say) {
				t.Errorf("stdout = %+v; want exitCode %d and an error saying %q", got, code, tt.say)
			}
			if !strings.Contains(stderr.String(), got.Error) {
				t.Errorf("stderr does not carry the message %q:\n%s", got.Error, stderr.String())
			}

			// The same refusal without -json: the message only on stderr.
			var plain []string
			for _, a := range tt.args {
				if !strings.HasPrefix(a, "-json") {
					plain = append(plain, a)
				}
			}
			stdout.Reset()
			if code := reportctl.Main(ctx, plain, reportctl.IO{Stdout: &stdout, Stderr: io.Discard}, tt.open); code != tt.code || stdout.Len() != 0 {
				t.Errorf("without -json: exit %d, stdout %q; want exit %d and nothing on stdout", code, stdout.String(), tt.code)
			}
		})
	}
}
