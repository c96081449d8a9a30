package serverenv

import (
	"context"
	"sync"
)

// Lazy holds one T created on first use, under a mutex. gen2 functions
// serve concurrent requests and every init runs in every function, so
// nothing is created at import time; a failed creation is returned to that
// caller and tried again on the next call (sync.Once would keep it
// forever). Creation gets a context detached from the request's
// cancellation, since what it makes outlives the request.
type Lazy[T any] struct {
	mu   sync.Mutex
	v    T
	ok   bool
	make func(context.Context) (T, error)
}

// NewLazy returns a Lazy made by make on its first successful Get.
func NewLazy[T any](make func(context.Context) (T, error)) *Lazy[T] {
	return &Lazy[T]{make: make}
}

// Get returns the value, creating it if needed.
func (l *Lazy[T]) Get(ctx context.Context) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok {
		return l.v, nil
	}
	v, err := l.make(context.WithoutCancel(ctx))
	if err != nil {
		var zero T
		return zero, err
	}
	l.v, l.ok = v, true
	return v, nil
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
	if c, ok := any(v).(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}
