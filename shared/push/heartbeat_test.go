package push

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
)

// A handler that works longer than the hash's TTL without writing keeps
// the hash alive (the heartbeat refreshes it), and a hash that is gone is
// not recreated. Against the real Redis, with a key prefix of its own and
// a 2 s TTL standing in for the 10-minute one.
func TestHeartbeatKeepsTheHashAlive(t *testing.T) {
	t.Parallel()
	testdb.NeedRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	prefix := fmt.Sprintf("hbtest%d:", rand.Uint64())
	st := state.New(rdb, prefix, 2*time.Second)
	ctx := context.Background()
	t.Cleanup(func() { rdb.Del(context.Background(), st.Key(1), st.Key(2)) })
	if _, err := st.Create(ctx, 1, "withdraw_by_tag", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	work := func(*message.Envelope) error {
		time.Sleep(3500 * time.Millisecond) // longer than the TTL, writing nothing
		return nil
	}
	for _, id := range []int64{1, 2} { // 2 has no hash
		f := &fn{Env: serverenv.Env{Project: "p", State: st}, handle: work}
		h := New("test", func(context.Context) (Func, error) { return f, nil })
		body := fmt.Sprintf(`{"message":{"data":"e30=","messageId":"m%d","attributes":{"recordId":"%d"}},"subscription":"s"}`, id, id)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("record %d: status %d", id, rec.Code)
		}
		n, err := rdb.Exists(ctx, st.Key(id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if id == 1 && n != 1 {
			t.Error("hash of record 1 gone after 3.5 s of work with a 2 s TTL; want the heartbeat to keep it alive")
		}
		if id == 2 && n != 0 {
			t.Error("hash of record 2 exists; the heartbeat must never create one")
		}
	}
}
