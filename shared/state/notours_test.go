package state_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/state"
)

// A key of the wrong type at FileDownloadRecordEntity-{ID} made every
// attempt fail with WRONGTYPE, and DrainTriggers put a TTL on it. Create now
// refuses any key it did not make, permanently, leaving its value and
// TTL as they were; Delete leaves it too. A hash from before the owner
// mark, naming this record, is still ours.
func TestCreateRefusesKeysNotOurs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		make   func(ctx context.Context, e env, key string) error
		dump   func(ctx context.Context, e env, key string) (any, error)
		wantOK bool // ours after all
	}{
		{"string", func(ctx context.Context, e env, key string) error { return e.rdb.Set(ctx, key, "upstream's", 0).Err() },
			func(ctx context.Context, e env, key string) (any, error) { return e.rdb.Get(ctx, key).Result() }, false},
		{"list", func(ctx context.Context, e env, key string) error { return e.rdb.RPush(ctx, key, "a", "b").Err() },
			func(ctx context.Context, e env, key string) (any, error) {
				return e.rdb.LRange(ctx, key, 0, -1).Result()
			}, false},
		{"set", func(ctx context.Context, e env, key string) error { return e.rdb.SAdd(ctx, key, "a").Err() },
			func(ctx context.Context, e env, key string) (any, error) { return e.rdb.SMembers(ctx, key).Result() }, false},
		{"hash of another program", func(ctx context.Context, e env, key string) error {
			return e.rdb.HSet(ctx, key, "name", "x", "recordId", "999").Err()
		}, func(ctx context.Context, e env, key string) (any, error) { return e.rdb.HGetAll(ctx, key).Result() }, false},
		{"hash with a forged mark value", func(ctx context.Context, e env, key string) error {
			return e.rdb.HSet(ctx, key, state.FieldOwner, "someone", "recordId", fmt.Sprint(id), "reportType", "r").Err()
		}, func(ctx context.Context, e env, key string) (any, error) { return e.rdb.HGetAll(ctx, key).Result() }, false},
		{"hash from before the mark", func(ctx context.Context, e env, key string) error {
			return e.rdb.HSet(ctx, key, "recordId", fmt.Sprint(id), "reportType", "withdraw_by_tag", "queryDoneCount", 0).Err()
		}, func(ctx context.Context, e env, key string) (any, error) { return e.rdb.HGetAll(ctx, key).Result() }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ctx := context.Background()
			key := e.st.Key(id)
			if err := tt.make(ctx, e, key); err != nil {
				t.Fatal(err)
			}
			before, err := tt.dump(ctx, e, key)
			if err != nil {
				t.Fatal(err)
			}
			created, err := e.st.Create(ctx, id, "withdraw_by_tag", []byte(`{}`))
			if tt.wantOK {
				if err != nil || created {
					t.Fatalf("Create = %v, %v; want false, nil (an existing hash of ours)", created, err)
				}
				return
			}
			if !errors.Is(err, state.ErrNotOurs) || fault.ClassOf(err) != fault.Fail || created {
				t.Fatalf("Create = %v, %v (class %v); want a permanent error wrapping ErrNotOurs", created, err, fault.ClassOf(err))
			}
			if pttl := e.rdb.PTTL(ctx, key).Val(); pttl != -1 {
				t.Errorf("PTTL after Create = %v, want -1: no TTL on a key we did not create", pttl)
			}
			t.Logf("reason: %v", err)
			if err := e.st.Delete(ctx, id); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			after, err := tt.dump(ctx, e, key)
			if err != nil {
				t.Fatalf("after Create and Delete: %v", err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("key changed by Create and Delete (-before +after):\n%s", diff)
			}
		})
	}
}

// A key replaced by one of another type mid-report: every state call
// that meets WRONGTYPE returns a permanent error naming the cause, so the
// report ends FAILED at once rather than after its retries and the TTL.
func TestWrongTypeIsPermanent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if err := e.rdb.Set(ctx, e.st.Key(id), "upstream's", 0).Err(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"IsDone":     func() error { _, err := e.st.IsDone(ctx, id, 1, srcWd); return err },
		"Read":       func() error { _, err := e.st.Read(ctx, id, [][]string{{srcWd}}); return err },
		"NewAttempt": func() error { _, err := e.st.NewAttempt(ctx, id); return err },
		"MarkDone":   func() error { _, err := e.st.MarkDone(ctx, id, 1, srcWd, dsWd, 1, 1, 1); return err },
		"Claim":      func() error { _, err := e.st.Claim(ctx, id, 1, "m", 1, holdLong); return err },
		"RecordError": func() error {
			return e.st.RecordError(ctx, id, srcWd, "x")
		},
		"GetChunk": func() error { _, err := e.st.Datasets(id).GetChunk(ctx, dsWd, 0); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, state.ErrNotOurs) || fault.ClassOf(err) != fault.Fail {
			t.Errorf("%s = %v (class %v); want a permanent error wrapping ErrNotOurs", name, err, fault.ClassOf(err))
		}
	}
}
