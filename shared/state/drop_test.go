package state_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testenv"
)

// A losing attempt's chunks are all dropped, however many, in commands of
// at most state.DropBatch chunks each (one script deleting them all held
// the shared Redis for its whole run), and the winner's dataset, another
// attempt whose name shares a prefix and the rest of the hash stay as they
// were.
func TestDropAttemptInBatches(t *testing.T) {
	t.Parallel()
	for _, chunks := range []int{0, 1, state.DropBatch, 3*state.DropBatch + 5} {
		t.Run(fmt.Sprintf("chunks=%d", chunks), func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ctx := context.Background()
			e.create(t, id)
			const winner, loser, neighbour = 1, 2, 21 // "…@21" starts with "…@2"
			put := func(attempt int64, n int) {
				t.Helper()
				an := state.AttemptName(dsWd, attempt)
				pairs := []any{dataset.ChunksField(an), n, dataset.RowsField(an), 10 * n}
				for i := range n {
					pairs = append(pairs, dataset.ChunkField(an, int64(i)), strings.Repeat("x", 1024)+strconv.Itoa(i))
				}
				if err := e.rdb.HSet(ctx, e.st.Key(id), pairs...).Err(); err != nil {
					t.Fatal(err)
				}
			}
			put(winner, chunks+7)
			put(neighbour, 3)
			before := e.hash(t, id)
			put(loser, chunks)
			e.log.take()

			if err := e.st.DropAttempt(ctx, id, dsWd, loser); err != nil {
				t.Fatal(err)
			}
			sent := e.log.take()
			if diff := cmp.Diff(before, e.hash(t, id)); diff != "" {
				t.Errorf("hash after dropping attempt %d (-want +got):\n%s", loser, diff)
			}
			var hdels int
			for _, args := range sent {
				name := strings.ToLower(fmt.Sprint(args[0]))
				if name != "hdel" {
					t.Errorf("DropAttempt sent %s, want only HDEL", name)
					continue
				}
				hdels++
				if fields := len(args) - 2; fields > state.DropBatch {
					t.Errorf("one HDEL named %d fields, want at most %d", fields, state.DropBatch)
				}
			}
			// Every full batch, then the one that came back short, then the counts.
			if want := chunks/state.DropBatch + 2; hdels != want {
				t.Errorf("DropAttempt sent %d HDELs, want %d", hdels, want)
			}
		})
	}
}

// Delete frees a finished hash with UNLINK, never DEL: a private
// redis-server, so its command statistics are this test's alone.
func TestDeleteUnlinks(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	rdb := testenv.PrivateRedis(t)
	ctx := context.Background()
	st := state.New(rdb, "", ttl)
	if _, err := st.Create(ctx, id, "withdraw_by_tag", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, st.Key(id)).Result(); err != nil || n != 0 {
		t.Fatalf("Exists after Delete = %d, %v; want 0", n, err)
	}
	stats, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]string{}
	for _, line := range strings.Split(stats, "\r\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "cmdstat_unlink" && name != "cmdstat_del") {
			continue
		}
		c, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		calls[name] = c
	}
	if diff := cmp.Diff(map[string]string{"cmdstat_unlink": "1"}, calls); diff != "" {
		t.Errorf("commands that deleted the hash (-want +got):\n%s", diff)
	}
}
