package fault

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Recovered calls f and returns its error; if f panics, it logs the panic
// with its stack on log (which carries the record) and returns an error
// saying what panicked, unclassified, so it is retried like any other
// error and, by the caller's retry policy, ends as one does. No goroutine
// of ours may take a process down (compare watermill's recoverer
// middleware).
func Recovered(log *slog.Logger, what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error(what+" panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("%s panicked: %v", what, p)
		}
	}()
	return f()
}
