package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Server names one server the client uses, as an operator knows it.
type Server string

// The servers.
const (
	MariaDB      Server = "MariaDB (the record table)"
	Redis        Server = "Redis (the report state)"
	RabbitMQ     Server = "RabbitMQ (the trigger queues)"
	CloudStorage Server = "Cloud Storage (the CSVs)"
	PubSub       Server = "Pub/Sub (the completion events)"
)

// Unreachable means a server could not be reached (or refused the
// connection): the message says which, where it was looked for, and how
// to start the local stack.
type Unreachable struct {
	Server Server
	Where  string // address and the variable that set it; no secrets
	Err    error
	// Answered: the server answered but refused us (credentials, a
	// missing database or queue), rather than not answering at all.
	Answered bool
}

func (u *Unreachable) Error() string {
	verb := "cannot reach"
	if u.Answered {
		verb = "cannot use"
	}
	return fmt.Sprintf("%s %s at %s: %v\n"+
		"  Locally, start the stack with `make up` (or only MariaDB, Redis and RabbitMQ with `make services`);\n"+
		"  against production, set the same variables the functions read (see the README's configuration table).",
		verb, u.Server, u.Where, u.Err)
}

func (u *Unreachable) Unwrap() error { return u.Err }

func (c *Client) where(s Server) string {
	if w, ok := c.Where[s]; ok {
		return w
	}
	return "(address not known)"
}

// Classify turns a connection failure to s into *Unreachable and returns
// any other error unchanged.
func (c *Client) Classify(s Server, err error) error {
	if err == nil {
		return nil
	}
	var u *Unreachable
	if errors.As(err, &u) {
		return err
	}
	if dialFailed(err) {
		return &Unreachable{Server: s, Where: c.where(s), Err: err}
	}
	return err
}

// dialFailed reports whether err is a failure to connect at all.
func dialFailed(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns) || errors.Is(err, context.DeadlineExceeded)
}

// pingTimeout bounds each check: a server that does not answer in this
// long is as good as down for a person at a terminal.
const pingTimeout = 5 * time.Second

// Ping checks that each server answers (RabbitMQ by opening and closing a
// connection); the first that does not is returned as *Unreachable.
// Cloud Storage is not pinged: a fetch reports it.
func (c *Client) Ping(ctx context.Context, servers ...Server) error {
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(ctx, pingTimeout)
		var err error
		switch s {
		case MariaDB:
			if c.DB != nil {
				err = c.DB.PingContext(ctx)
			}
		case Redis:
			if c.Redis != nil {
				err = c.Redis.Ping(ctx).Err()
			}
		case RabbitMQ:
			conn, derr := c.dial()
			if derr == nil {
				conn.Close()
			}
			err = derr
		}
		cancel()
		if err != nil {
			var u *Unreachable
			if errors.As(err, &u) {
				return err
			}
			return &Unreachable{Server: s, Where: c.where(s), Err: err, Answered: !dialFailed(err)}
		}
	}
	return nil
}
