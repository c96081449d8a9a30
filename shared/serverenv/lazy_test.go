package serverenv_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

type client struct{ n int64 }

func TestFailureIsRetried(t *testing.T) {
	t.Parallel()
	boom := errors.New("dial failed")
	var calls atomic.Int64
	v := serverenv.NewLazy(func(context.Context) (*client, error) {
		n := calls.Add(1)
		if n <= 2 {
			return &client{n}, boom // a value returned with an error is not kept
		}
		return &client{n}, nil
	})
	ctx := context.Background()
	for i := range 2 {
		c, err := v.Get(ctx)
		if !errors.Is(err, boom) || c != nil {
			t.Errorf("Get %d = %v, %v; want nil and the constructor's error", i+1, c, err)
		}
		if c, ok := v.Peek(); ok || c != nil {
			t.Errorf("Peek after failure %d = %v, %v; want nil, false", i+1, c, ok)
		}
	}
	first, err := v.Get(ctx)
	if err != nil || first == nil || first.n != 3 {
		t.Fatalf("Get 3 = %v, %v; want the client of the third call", first, err)
	}
	for range 3 {
		if c, err := v.Get(ctx); err != nil || c != first {
			t.Errorf("Get after success = %v, %v; want the same client", c, err)
		}
	}
	if c, ok := v.Peek(); !ok || c != first {
		t.Errorf("Peek = %v, %v; want the client", c, ok)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("constructor called %d times, want 3", got)
	}
}

func TestConcurrentGetsCreateOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	v := serverenv.NewLazy(func(context.Context) (*client, error) {
		return &client{calls.Add(1)}, nil
	})
	const n = 50
	got := make([]*client, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			c, err := v.Get(context.Background())
			if err != nil {
				t.Error(err)
			}
			got[i] = c
		})
	}
	close(start)
	wg.Wait()
	if c := calls.Load(); c != 1 {
		t.Errorf("constructor called %d times by %d concurrent Gets, want 1", c, n)
	}
	for i, c := range got {
		if c != got[0] || c == nil {
			t.Errorf("Get %d returned %p, Get 0 %p", i, c, got[0])
		}
	}
}

// TestConcurrentGetsAfterFailures: failures under load are not kept, and
// once a Get succeeds every later Get shares its value.
func TestConcurrentGetsAfterFailures(t *testing.T) {
	t.Parallel()
	var calls, made atomic.Int64
	v := serverenv.NewLazy(func(context.Context) (*client, error) {
		if calls.Add(1) <= 5 {
			return nil, errors.New("not yet")
		}
		return &client{made.Add(1)}, nil
	})
	const n = 50
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range n {
		wg.Go(func() {
			if _, err := v.Get(context.Background()); err != nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if f := failures.Load(); f != 5 {
		t.Errorf("%d Gets failed, want 5 (one per failed creation)", f)
	}
	if m := made.Load(); m != 1 {
		t.Errorf("%d clients made, want 1", m)
	}
}

func TestContextReachesConstructor(t *testing.T) {
	t.Parallel()
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "request")
	v := serverenv.NewLazy(func(ctx context.Context) (string, error) {
		s, _ := ctx.Value(key{}).(string)
		return s, nil
	})
	if got, err := v.Get(ctx); err != nil || got != "request" {
		t.Errorf("Get = %q, %v; want the caller's context to reach the constructor", got, err)
	}
}

// What Get creates outlives the request: a cancelled request context must
// not reach the constructor as cancelled (clients built with it would die
// with the first request).
func TestConstructorContextOutlivesRequest(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v := serverenv.NewLazy(func(ctx context.Context) (error, error) {
		return ctx.Err(), nil
	})
	if got, err := v.Get(ctx); err != nil || got != nil {
		t.Errorf("constructor saw ctx.Err() = %v (Get error %v); want a context not cancelled", got, err)
	}
}

type closer struct{ closed atomic.Int32 }

func (c *closer) Close() error { c.closed.Add(1); return nil }

func TestCloseClosesAndForgets(t *testing.T) {
	t.Parallel()
	var made []*closer
	v := serverenv.NewLazy(func(context.Context) (*closer, error) {
		c := &closer{}
		made = append(made, c)
		return c, nil
	})
	if err := v.Close(); err != nil {
		t.Fatalf("Close before Get: %v", err)
	}
	if _, err := v.Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Peek(); ok {
		t.Error("value still held after Close")
	}
	if _, err := v.Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(made) != 2 || made[0].closed.Load() != 1 || made[1].closed.Load() != 0 {
		t.Errorf("made %d values, closed counts %v; want 2 values, the first closed once", len(made), []int32{made[0].closed.Load(), made[1].closed.Load()})
	}
}
