// Package client does what the upstream service and a person do against a
// running stack: insert a record, publish its ID to RabbitMQ, watch it
// reach a final status, and fetch the CSV from the Cloud Storage emulator.
package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// Client talks to one stack.
type Client struct {
	Records      *record.Repo
	State        *state.Store
	AMQPURL      string
	TriggerQueue string
	// StorageURL is the emulator's base URL, "http://127.0.0.1:4443".
	StorageURL string
}

// Request inserts a PENDING record and publishes its ID, as upstream does.
func (c *Client) Request(ctx context.Context, reportType string, params []byte) (int64, error) {
	id, err := c.Records.Insert(ctx, reportType, params)
	if err != nil {
		return 0, err
	}
	return id, c.Publish(ctx, []byte(strconv.FormatInt(id, 10)))
}

// Publish sends one trigger body to the trigger queue and waits for the
// broker's confirm.
func (c *Client) Publish(ctx context.Context, body []byte) error {
	conn, err := amqp.Dial(c.AMQPURL)
	if err != nil {
		return fmt.Errorf("amqp dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp channel: %w", err)
	}
	// The upstream owns the trigger queue; this client stands in for it.
	if err := trigger.DeclareTrigger(ch, c.TriggerQueue); err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("amqp confirm: %w", err)
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", c.TriggerQueue, false, false,
		amqp.Publishing{ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: body})
	if err != nil {
		return fmt.Errorf("amqp publish: %w", err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("amqp publish not confirmed: %v", err)
	}
	return nil
}

// Progress is one look at a running report.
type Progress struct {
	Status     record.Status
	DoneCount  int64
	Expected   int64 // listeners in all stages
	Stage      int   // highest stage whose listeners are all done
	StateGone  bool
	LastErrors map[string]string
}

func (p Progress) String() string {
	if p.Status.Final() {
		return p.Status.String()
	}
	if p.StateGone {
		return p.Status.String() + " (no state in Redis yet)"
	}
	s := fmt.Sprintf("%s: %d/%d listeners done", p.Status, p.DoneCount, p.Expected)
	for who, e := range p.LastErrors {
		s += fmt.Sprintf("; %s retrying after: %s", who, e)
	}
	return s
}

// Wait polls until record id is SUCCESS or FAILED, calling progress on
// every change.
func (c *Client) Wait(ctx context.Context, id int64, progress func(Progress)) (record.Record, error) {
	var last string
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		rec, err := c.Records.Get(ctx, id)
		if err != nil {
			return rec, err
		}
		p := Progress{Status: rec.Status, LastErrors: map[string]string{}}
		if !rec.Status.Final() && c.State != nil {
			if rep, ok := report.Lookup(rec.ReportType); ok {
				var stages [][]string
				for n := range rep.Stages {
					stages = append(stages, rep.SourceNames(n+1))
				}
				p.Expected = rep.DoneAfter(len(rep.Stages))
				snap, err := c.State.Read(ctx, id, stages)
				if err != nil {
					p.StateGone = true
				} else {
					p.DoneCount = snap.DoneCount
					for k, v := range snap.Errors {
						p.LastErrors[k] = v
					}
				}
			}
		}
		if s := p.String(); s != last && progress != nil {
			progress(p)
			last = s
		}
		if rec.Status.Final() {
			return rec, nil
		}
		select {
		case <-ctx.Done():
			return rec, fmt.Errorf("waiting for record %d: %w (last: %s)", id, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// Fetch downloads a gs://bucket/object path from the emulator.
func (c *Client) Fetch(ctx context.Context, gsPath string) ([]byte, error) {
	rest, ok := strings.CutPrefix(gsPath, "gs://")
	bucket, object, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return nil, fmt.Errorf("not a gs:// path: %q", gsPath)
	}
	u := fmt.Sprintf("%s/storage/v1/b/%s/o/%s?alt=media", strings.TrimSuffix(c.StorageURL, "/"), url.PathEscape(bucket), url.PathEscape(object))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", gsPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", gsPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: %s: %s", gsPath, resp.Status, body)
	}
	return body, nil
}
