package sweep_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/functions/sweep"
	"github.com/fanoutexport/fanoutexport/shared/record"
	shared "github.com/fanoutexport/fanoutexport/shared/stuck"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/topology"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// TestServeHTTP runs the function as Cloud Scheduler calls it, configured
// from the environment only: a stranded PROCESSING record ends FAILED and
// a stale PENDING one has its trigger republished to the test's queue.
func TestServeHTTP(t *testing.T) {
	db := testdb.New(t, "sweepfn", record.DDL)
	var dbName string
	if err := db.QueryRow("SELECT DATABASE()").Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := testdb.UniqueName(t, "sweepfn.trigger")
	if err := trigger.DeclareTrigger(ch, queue); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.QueueDelete(queue, false, false, false) })
	t.Setenv("RECORD_DSN", testdb.Server()+dbName)
	t.Setenv("TRIGGER_QUEUE", queue)
	// A prefix no other test uses: no hash exists under it.
	t.Setenv("REDIS_KEY_PREFIX", testdb.UniqueName(t, "sweepfn")+":")
	t.Setenv("SWEEP_PENDING_AFTER", "10m")
	// Pub/Sub (pstest) for the completion event of the record it fails.
	ps := pstest.NewServer()
	t.Cleanup(func() { ps.Close() })
	t.Setenv("PUBSUB_EMULATOR_HOST", ps.Addr)
	t.Setenv("GOOGLE_CLOUD_PROJECT", "p")
	if _, err := ps.GServer.CreateTopic(context.Background(), &pubsubpb.Topic{Name: "projects/p/topics/" + topology.TopicCompleted}); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	repo := record.NewRepo(db)
	insert := func(status record.Status, age time.Duration) int64 {
		id, err := repo.Insert(ctx, "withdraw_by_tag", []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE file_download_record SET status = ?, updated_at = CURRENT_TIMESTAMP(3) - INTERVAL ? SECOND WHERE id = ?`, status, int64(age.Seconds()), id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	stranded := insert(record.Processing, 5*time.Minute)
	pending := insert(record.Pending, 11*time.Minute)

	h := sweep.New()
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got shared.Result
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	if diff := cmp.Diff(shared.Result{Republished: []int64{pending}, Lost: []int64{stranded}}, got); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	rec, err := repo.Get(ctx, stranded)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != record.Failed || rec.FailReason != shared.ReasonLost {
		t.Errorf("stranded record = %v %q, want FAILED %q", rec.Status, rec.FailReason, shared.ReasonLost)
	}
	// The record it FAILED is announced like any other end.
	msgs := ps.Messages()
	if len(msgs) != 1 || msgs[0].Attributes["recordId"] != fmt.Sprint(stranded) || msgs[0].Attributes["status"] != "FAILED" ||
		!strings.Contains(string(msgs[0].Data), `"failReason":"`+shared.ReasonLost+`"`) {
		t.Errorf("completion events %v; want one FAILED event for record %d with the reason", msgs, stranded)
	}
	d, ok, err := ch.Get(queue, true)
	if err != nil || !ok || string(d.Body) != fmt.Sprintf(`{"recordId":%d}`, pending) {
		t.Errorf("trigger queue: %q, %v, %v; want the PENDING record's ID", d.Body, ok, err)
	}
}

// TestConfigError: a bad variable answers 500 naming it.
func TestConfigError(t *testing.T) {
	t.Setenv("SWEEP_PROCESSING_AFTER", "10s")
	h := sweep.New()
	defer h.Close()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "SWEEP_PROCESSING_AFTER") {
		t.Errorf("status %d, body %q; want 500 naming SWEEP_PROCESSING_AFTER", w.Code, w.Body)
	}
}
