// Package lazy creates a client on first use, under a mutex, and tries
// again on the next call if creation failed. gen2 functions serve
// concurrent requests, and every init runs in every function, so clients
// are never created at import time and a failure is never kept forever
// (which sync.Once would do).
package lazy

import (
	"context"
	"sync"
)

// Value holds one lazily created T.
type Value[T any] struct {
	mu   sync.Mutex
	v    T
	ok   bool
	make func(context.Context) (T, error)
}

// New returns a Value created by make on first successful Get.
func New[T any](make func(context.Context) (T, error)) *Value[T] {
	return &Value[T]{make: make}
}

// Get returns the value, creating it if needed. Creation errors are
// returned to this caller and creation is attempted again next time.
func (l *Value[T]) Get(ctx context.Context) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok {
		return l.v, nil
	}
	v, err := l.make(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	l.v, l.ok = v, true
	return v, nil
}

// Peek returns the value if it was created, for shutdown.
func (l *Value[T]) Peek() (T, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v, l.ok
}
