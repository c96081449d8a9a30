package serverenv_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestConcurrentGetsAfterFailures: concurrent Gets share one creation at
// a time; its failure is returned to those that waited for it and not
// kept, and once one succeeds every later Get shares its value.
func TestConcurrentGetsAfterFailures(t *testing.T) {
	t.Parallel()
	var calls, made, running, overlaps atomic.Int64
	v := serverenv.NewLazy(func(context.Context) (*client, error) {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer running.Add(-1)
		if calls.Add(1) <= 5 {
			return nil, errors.New("not yet")
		}
		return &client{made.Add(1)}, nil
	})
	const n = 50
	var got sync.Map
	for round := 0; ; round++ {
		if round > 10 {
			t.Fatalf("still failing after %d rounds of %d concurrent Gets (%d creations)", round, n, calls.Load())
		}
		var wg sync.WaitGroup
		var failures atomic.Int64
		for i := range n {
			wg.Go(func() {
				c, err := v.Get(context.Background())
				if err != nil {
					failures.Add(1)
					return
				}
				got.Store(i+round*n, c)
			})
		}
		wg.Wait()
		if failures.Load() == 0 {
			break
		}
	}
	if c := calls.Load(); c != 6 {
		t.Errorf("constructor called %d times, want 6 (5 failures, 1 success)", c)
	}
	if o := overlaps.Load(); o != 0 {
		t.Errorf("constructor ran concurrently with itself %d times", o)
	}
	if m := made.Load(); m != 1 {
		t.Errorf("%d clients made, want 1", m)
	}
	got.Range(func(k, c any) bool {
		if c.(*client).n != 1 {
			t.Errorf("Get %v returned client %d, want the one made", k, c.(*client).n)
		}
		return true
	})
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

// What Get creates outlives the request: the request's context ending
// while the constructor runs must not reach the constructor (clients built
// with it would die with the first request), and the value it makes is
// kept for the next Get.
func TestConstructorContextOutlivesRequest(t *testing.T) {
	t.Parallel()
	entered, cancelled := make(chan struct{}), make(chan struct{})
	v := serverenv.NewLazy(func(ctx context.Context) (error, error) {
		close(entered)
		<-cancelled
		return ctx.Err(), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := getAsync(ctx, v)
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Get whose context was cancelled = %v, want context.Canceled", err)
	}
	close(cancelled)
	if got, err := v.Get(context.Background()); err != nil || got != nil {
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

// within is how long a test waits for a Get that must return; reaching it
// means Get hung, not that it was slow.
const within = 30 * time.Second

// getAsync runs Get in a goroutine and returns where its result arrives.
func getAsync[T any](ctx context.Context, v *serverenv.Lazy[T]) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := v.Get(ctx)
		done <- err
	}()
	return done
}

// A constructor that never returns (a metadata server that accepts and
// never answers) must not hold every request: each waiter gives up when
// its own context ends, the one that started the creation too.
func TestWaitersGiveUpOnAStuckConstructor(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	t.Cleanup(func() { close(release) })
	v := serverenv.NewLazy(func(context.Context) (*client, error) {
		entered <- struct{}{}
		<-release // ignores its context, as a stuck dial can
		return &client{}, nil
	})
	type waiter struct {
		cancel context.CancelFunc
		done   <-chan error
	}
	var ws []waiter
	for i := range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		ws = append(ws, waiter{cancel, getAsync(ctx, v)})
		if i == 0 {
			<-entered // the first Get is creating
		}
	}
	for i, w := range ws {
		w.cancel()
		select {
		case err := <-w.done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Get %d after its context was cancelled = %v, want context.Canceled", i, err)
			}
		case <-time.After(within):
			t.Fatalf("Get %d still blocked %s after its context was cancelled", i, within)
		}
	}
}

// The constructor's context outlives the request but not a stuck
// creation: when the timeout gives the creation up, a constructor that
// honours its context is cancelled (the cause says why). A successful
// one's context has no deadline: clients keep it.
func TestConstructorContextEndsWithTheTimeout(t *testing.T) {
	t.Parallel()
	cause := make(chan error, 1)
	stuck := serverenv.NewLazyTimeout(10*time.Millisecond, func(ctx context.Context) (*client, error) {
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return nil, ctx.Err()
	})
	if _, err := stuck.Get(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get = %v, want context.DeadlineExceeded", err)
	}
	select {
	case err := <-cause:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "took longer than 10ms") {
			t.Errorf("constructor's context ended with %v, want the timeout", err)
		}
	case <-time.After(within):
		t.Fatalf("the constructor's context was not cancelled %s after the timeout", within)
	}

	ok := serverenv.NewLazy(func(ctx context.Context) (context.Context, error) { return ctx, nil })
	ctx, err := ok.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d, has := ctx.Deadline(); has {
		t.Errorf("a created value's context has deadline %v; clients keep it, so it must not end", d)
	}
}

// A creation that outlives its timeout is given up: its waiters get an
// error, the next Get starts a new creation, and the value the stuck one
// returns at last is closed rather than leaked.
func TestCreationTimesOut(t *testing.T) {
	t.Parallel()
	type stuckKey struct{}
	release := make(chan struct{})
	stuck := make(chan *closer, 1)
	v := serverenv.NewLazyTimeout(10*time.Millisecond, func(ctx context.Context) (*closer, error) {
		c := &closer{}
		if ctx.Value(stuckKey{}) != nil {
			stuck <- c
			<-release // ignores its context, as a stuck dial can
		}
		return c, nil
	})
	if _, err := v.Get(context.WithValue(context.Background(), stuckKey{}, true)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with a stuck constructor = %v, want context.DeadlineExceeded", err)
	}
	second, err := v.Get(context.Background())
	if err != nil {
		t.Fatalf("Get after the timeout = %v; want a new creation's value", err)
	}
	first := <-stuck
	close(release)
	deadline := time.Now().Add(within)
	for first.closed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the given-up creation's value was not closed within %s", within)
		}
		time.Sleep(time.Millisecond)
	}
	if c, err := v.Get(context.Background()); err != nil || c != second || second.closed.Load() != 0 {
		t.Errorf("Get = %p, %v (closed %d); want the second creation's value, open", c, err, second.closed.Load())
	}
}

// A panicking constructor fails the Gets that waited for it, as an error;
// it runs in a goroutine of its own, where a panic would end the process.
func TestConstructorPanicIsAnError(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	v := serverenv.NewLazy(func(context.Context) (*client, error) {
		if calls.Add(1) == 1 {
			panic("nil map")
		}
		return &client{}, nil
	})
	if _, err := v.Get(context.Background()); err == nil || !strings.Contains(err.Error(), "nil map") {
		t.Errorf("Get with a panicking constructor = %v, want an error naming the panic", err)
	}
	if _, err := v.Get(context.Background()); err != nil {
		t.Errorf("Get after the panic = %v, want a new creation", err)
	}
}
