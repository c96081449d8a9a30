package serverenv

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// CreateTimeout bounds one creation of a Lazy's value: long enough for a
// cold metadata server and a trace exporter's first token, short enough
// that a push (60 s ack deadline) can still answer, and so be retried.
const CreateTimeout = 30 * time.Second

// Lazy holds one T created on first use. gen2 functions serve concurrent
// requests and every init runs in every function, so nothing is created at
// import time; a failed creation is returned to the callers that waited for
// it and tried again on the next call (sync.Once would keep it forever).
//
// One creation runs at a time, in its own goroutine, with a context
// detached from the request's cancellation (what it makes outlives the
// request), bounded by a timeout (WithoutCancel drops the deadline too):
// past it the creation is given up and its context cancelled. Every caller, the one that started it included, waits for it with
// its own context: a stuck constructor (a metadata server that never
// answers) costs each request its own deadline, never the instance.
type Lazy[T any] struct {
	make    func(context.Context) (T, error)
	timeout time.Duration

	mu      sync.Mutex
	v       T
	ok      bool
	pending *creation[T] // the creation running now, if any
}

// creation is one run of the constructor; done closes once v and err are
// set, by the constructor's return or by the timeout, whichever is first.
type creation[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// NewLazy returns a Lazy made by make on its first successful Get, each
// creation bounded by CreateTimeout.
func NewLazy[T any](make func(context.Context) (T, error)) *Lazy[T] {
	return NewLazyTimeout(CreateTimeout, make)
}

// NewLazyTimeout is NewLazy with each creation bounded by timeout.
func NewLazyTimeout[T any](timeout time.Duration, make func(context.Context) (T, error)) *Lazy[T] {
	return &Lazy[T]{make: make, timeout: timeout}
}

// Get returns the value, creating it if needed. It returns ctx's error if
// ctx ends first; the creation goes on for the next caller.
func (l *Lazy[T]) Get(ctx context.Context) (T, error) {
	l.mu.Lock()
	if l.ok {
		defer l.mu.Unlock()
		return l.v, nil
	}
	c := l.pending
	if c == nil {
		c = &creation[T]{done: make(chan struct{})}
		l.pending = c
		l.start(context.WithoutCancel(ctx), c)
	}
	l.mu.Unlock()
	select {
	case <-c.done:
		return c.v, c.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("waiting for the clients to be created: %w", context.Cause(ctx))
	}
}

// start runs the constructor for c. Whichever ends c first, the
// constructor or the timeout, settles it. The constructor's context is
// cancelled only when the timeout gives the creation up, never after it
// succeeded: clients keep the context they were built with (credentials
// are refreshed with it), so it has no deadline. A value that arrives
// after the timeout is closed, since nobody holds it.
func (l *Lazy[T]) start(ctx context.Context, c *creation[T]) {
	ctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(l.timeout, func() {
		var zero T
		err := fmt.Errorf("creating the clients took longer than %s: %w", l.timeout, context.DeadlineExceeded)
		if l.settle(c, zero, err) {
			cancel(err)
		}
	})
	go func() {
		v, err := l.run(ctx)
		timer.Stop()
		if !l.settle(c, v, err) && err == nil {
			closeValue(v)
		}
	}()
}

// run calls the constructor; a panic in it is an error for its waiters,
// not the end of the process (it runs in a goroutine of its own).
func (l *Lazy[T]) run(ctx context.Context) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, err = zero, fmt.Errorf("creating the clients panicked: %v\n%s", p, debug.Stack())
		}
	}()
	v, err = l.make(ctx)
	if err != nil {
		var zero T
		v = zero // a value returned with an error is not kept
	}
	return v, err
}

// settle ends c with v and err if nothing ended it yet, keeping v on
// success, and reports whether it did.
func (l *Lazy[T]) settle(c *creation[T], v T, err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending != c {
		return false
	}
	l.pending = nil
	c.v, c.err = v, err
	if err == nil {
		l.v, l.ok = v, true
	}
	close(c.done)
	return true
}

// Peek returns the value if it was created.
func (l *Lazy[T]) Peek() (T, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v, l.ok
}

// Close closes the value, if it was created and can be closed; a later
// Get creates a new one.
func (l *Lazy[T]) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ok {
		return nil
	}
	var zero T
	v := l.v
	l.v, l.ok = zero, false
	return closeValue(v)
}

// closeValue closes v if it can be closed.
func closeValue(v any) error {
	if c, ok := v.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}
