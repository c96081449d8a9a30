// Package fault classifies errors once, where they are born, so the one
// place that answers a message (the push handler, the trigger consumer)
// maps the class to an outcome without a switch of its own:
//
//   - Retry (any error not marked otherwise): the condition may heal; the
//     message is answered non-2xx (or requeued) and delivered again.
//   - Fail: retrying cannot help (bad params, an unknown report type, a
//     corrupt dataset); the report ends FAILED now with the error's text as
//     its reason, and the message is acked.
//   - Park: the message names nothing we can act on (an undecodable body);
//     it is kept in the parking topic or queue with the reason, and acked.
//
// The idiom is cenkalti/backoff's Permanent: a wrapper read with errors.As.
package fault

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Class says what to do with a message whose handling returned an error.
type Class int

// The classes.
const (
	Retry Class = iota
	Fail
	Park
)

func (c Class) String() string {
	switch c {
	case Fail:
		return "fail"
	case Park:
		return "park"
	}
	return "retry"
}

// Error carries its class through wrapping.
type Error struct {
	Class Class
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as one retrying cannot fix: the report ends FAILED
// with err's text as the reason.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: Fail, Err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, a...)).
func Permanentf(format string, a ...any) error { return Permanent(fmt.Errorf(format, a...)) }

// Parked marks err as naming nothing we can act on: the message is parked.
func Parked(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: Park, Err: err}
}

// Parkf is Parked(fmt.Errorf(format, a...)).
func Parkf(format string, a ...any) error { return Parked(fmt.Errorf(format, a...)) }

// ClassOf returns err's class: the outermost classification wins, and an
// unclassified error is Retry.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Retry
}

// Clip shortens s to at most max bytes, cutting at a rune start and ending
// with "…", so the result stays valid UTF-8 (utf8mb4 columns refuse
// invalid text, and a cut rune would make the record unfinishable).
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// Body renders a message body for a log line: at most max bytes, quoted
// when it is not UTF-8 text, with its full size when cut.
func Body(data []byte, max int) string {
	s := data
	if len(s) > max {
		s = s[:max]
	}
	if !utf8.Valid(s) {
		return fmt.Sprintf("%q", s)
	}
	if len(data) > max {
		return string(s) + fmt.Sprintf("… (%d bytes)", len(data))
	}
	return string(s)
}
