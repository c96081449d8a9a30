package trigger

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/testenv"
)

func TestParseInfoMemory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, info      string
		used, maxmemory int64
		wantErr         bool
	}{
		{"redis 7", "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:4194304\r\nmaxmemory_human:4.00M\r\n", 1048576, 4194304, false},
		{"no limit", "used_memory:900000\nmaxmemory:0\n", 900000, 0, false},
		{"maxmemory missing", "used_memory:900000\n", 0, 0, true},
		{"not a number", "used_memory:lots\nmaxmemory:0\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			used, maxmemory, err := parseInfoMemory(tt.info)
			if (err != nil) != tt.wantErr || used != tt.used || maxmemory != tt.maxmemory {
				t.Errorf("parseInfoMemory = %d, %d, %v; want %d, %d, error %v", used, maxmemory, err, tt.used, tt.maxmemory, tt.wantErr)
			}
		})
	}
}

// insertPending adds n PENDING records.
func insertPending(t *testing.T, repo *record.Repo, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		id, err := repo.Insert(context.Background(), "withdraw_by_tag", []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// Admissions racing from two pools (two DrainTriggers instances), each trigger on
// its own connection: exactly the limit goes through, however they
// interleave; a slot freed by a final record is taken once. Against the
// real MariaDB.
func TestAdmitIsAtomicAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, "admit", record.DDL)
	var dsn string
	if err := db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&dsn); err != nil {
		t.Fatal(err)
	}
	second, err := serverenv.OpenDBPool(testdb.Server()+dsn, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	repos := []*record.Repo{record.NewRepo(db), record.NewRepo(second)}
	const limit, n = 5, 40
	ids := insertPending(t, repos[0], n)

	admitAll := func(ids []int64) map[record.Admission]int {
		var mu sync.Mutex
		got := map[record.Admission]int{}
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				a, err := repos[i%2].Admit(ctx, id, limit)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[a]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return got
	}
	if diff := cmp.Diff(map[record.Admission]int{record.Admitted: limit, record.Full: n - limit}, admitAll(ids)); diff != "" {
		t.Errorf("first burst (-want +got):\n%s", diff)
	}
	// Two reports finish; the next burst (every still PENDING record)
	// gets exactly those two slots.
	var processing []int64
	for _, id := range ids {
		rec, err := repos[0].Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status == record.Processing {
			processing = append(processing, id)
		}
	}
	for _, id := range processing[:2] {
		if ok, err := repos[0].MarkSuccess(ctx, id, "gs://b/o", 1); err != nil || !ok {
			t.Fatalf("MarkSuccess %d = %v, %v", id, ok, err)
		}
	}
	var pending []int64
	for _, id := range ids {
		if rec, _ := repos[0].Get(ctx, id); rec.Status == record.Pending {
			pending = append(pending, id)
		}
	}
	if diff := cmp.Diff(map[record.Admission]int{record.Admitted: 2, record.Full: len(pending) - 2}, admitAll(pending)); diff != "" {
		t.Errorf("second burst (-want +got):\n%s", diff)
	}
	if n, err := repos[0].CountProcessing(ctx); err != nil || n != limit {
		t.Errorf("CountProcessing = %d, %v; want %d", n, err, limit)
	}
	// A record already PROCESSING is not admitted twice (and would take
	// no slot: Dispatch does not ask).
	if a, err := repos[1].Admit(ctx, processing[2], limit+1); err != nil || a != record.NotPending {
		t.Errorf("Admit of a PROCESSING record = %v, %v; want not pending", a, err)
	}
}

// A new report waits while Redis is above the high-water mark and goes
// once memory is freed; a record already PROCESSING is never held back.
// A private redis-server with maxmemory 16 MB, a 0.5 high-water mark,
// filled past 8 MB by ten 1 MB values; the real MariaDB for the records.
func TestNewReportsWaitAboveRedisHighWater(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.PrivateRedis(t, "--maxmemory", "16mb", "--maxmemory-policy", "noeviction")
	repo := record.NewRepo(testdb.New(t, "highwater", record.DDL))
	mem := &RedisMemory{Client: rdb, HighWater: 0.5}
	d := &Dispatcher{Records: repo, Limits: Limits{MaxInFlight: 10, Memory: mem}}
	log := slog.New(slog.DiscardHandler)
	ids := insertPending(t, repo, 2)

	if above, used, maxmemory, err := mem.Above(ctx); err != nil || above || maxmemory != 16<<20 {
		t.Fatalf("empty server: Above = %v, used %d, maxmemory %d, %v; want below, maxmemory 16 MB", above, used, maxmemory, err)
	}
	fill(t, rdb)
	// Each round is what a trigger coming back from the throttle queue
	// does: it waits again, and the record stays PENDING.
	for round := range 3 {
		moved, err := d.admit(ctx, ids[0], false, log)
		if moved || !errors.Is(err, ErrThrottled) || !strings.Contains(err.Error(), "REDIS_MEMORY_HIGH_WATER") {
			t.Fatalf("round %d above the mark: admit = %v, %v; want ErrThrottled naming REDIS_MEMORY_HIGH_WATER", round, moved, err)
		}
		if rec, err := repo.Get(ctx, ids[0]); err != nil || rec.Status != record.Pending {
			t.Fatalf("round %d: record is %v, %v; want PENDING", round, rec.Status, err)
		}
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if moved, err := d.admit(ctx, ids[0], false, log); !moved || err != nil {
		t.Fatalf("below the mark: admit = %v, %v; want admitted", moved, err)
	}
	if rec, err := repo.Get(ctx, ids[0]); err != nil || rec.Status != record.Processing {
		t.Errorf("record is %v, %v; want PROCESSING", rec.Status, err)
	}

	// maxmemory 0 turns the check off, however much is used.
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	fill(t, rdb)
	if moved, err := d.admit(ctx, ids[1], false, log); !moved || err != nil {
		t.Errorf("maxmemory 0: admit = %v, %v; want admitted", moved, err)
	}
}

// fill stores ten 1 MB values.
func fill(t *testing.T, rdb *redis.Client) {
	t.Helper()
	for i := range 10 {
		if err := rdb.Set(context.Background(), "ballast:"+strconv.Itoa(i), strings.Repeat("x", 1<<20), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}
