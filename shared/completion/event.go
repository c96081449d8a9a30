// Package completion announces records that became final. The function
// that makes a record SUCCESS or FAILED reads the row back and publishes
// its completion event to the Pub/Sub topic report-completed, waiting for
// Pub/Sub's confirm before it acks its own input; a handler that finds its
// record already final announces it again, so delivery is at least once and
// every copy is the same except downloadUrl (a fresh signature each time).
// DrainTriggers forwards the events to a RabbitMQ fanout exchange
// (Forwarder), so an upstream that publishes triggers on RabbitMQ hears
// back there.
package completion

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/record"
)

// Version is the event's schema version ("v").
const Version = 1

// Attributes of the Pub/Sub message.
const (
	AttrRecordID = "recordId"
	AttrStatus   = "status"
)

// TimeFormat is finishedAt's format: RFC 3339 in UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Event is the completion event of one final record.
type Event struct {
	RecordID   int64
	ReportType string
	Status     record.Status // Success or Failed
	FilePath   string        // SUCCESS: gs://bucket/object
	RowCount   int64         // SUCCESS
	FailReason string        // FAILED
	FinishedAt time.Time     // the row's updated_at
	// DownloadURL is a signed link to FilePath, SUCCESS only, when signing
	// is configured.
	DownloadURL string
}

// FromRecord builds the event of rec, which must be final.
func FromRecord(rec record.Record) (Event, error) {
	if !rec.Status.Final() {
		return Event{}, fmt.Errorf("completion event of record %d: status %v is not final", rec.ID, rec.Status)
	}
	ev := Event{RecordID: rec.ID, ReportType: rec.ReportType, Status: rec.Status, FinishedAt: rec.UpdatedAt}
	if rec.Status == record.Success {
		ev.FilePath, ev.RowCount = rec.FilePath, rec.RowCount
	} else {
		ev.FailReason = rec.FailReason
	}
	return ev, nil
}

// The two bodies, fields in the contract's order. A SUCCESS always has
// filePath and rowCount (0 rows is a row count), a FAILED always its
// failReason.
type successBody struct {
	V           int    `json:"v"`
	RecordID    int64  `json:"recordId"`
	ReportType  string `json:"reportType"`
	Status      string `json:"status"`
	FilePath    string `json:"filePath"`
	RowCount    int64  `json:"rowCount"`
	FinishedAt  string `json:"finishedAt"`
	DownloadURL string `json:"downloadUrl,omitempty"`
}

type failedBody struct {
	V          int    `json:"v"`
	RecordID   int64  `json:"recordId"`
	ReportType string `json:"reportType"`
	Status     string `json:"status"`
	FailReason string `json:"failReason"`
	FinishedAt string `json:"finishedAt"`
}

// MarshalJSON writes the contract's body:
//
//	{"v":1,"recordId":N,"reportType":"…","status":"SUCCESS","filePath":"gs://…","rowCount":N,"finishedAt":"…"[,"downloadUrl":"…"]}
//	{"v":1,"recordId":N,"reportType":"…","status":"FAILED","failReason":"…","finishedAt":"…"}
//
// HTML characters are not escaped: the body is read by programs, and a
// signed URL's "&" stays readable.
func (e Event) MarshalJSON() ([]byte, error) {
	at := e.FinishedAt.UTC().Format(TimeFormat)
	var body any
	switch e.Status {
	case record.Success:
		body = successBody{Version, e.RecordID, e.ReportType, e.Status.String(), e.FilePath, e.RowCount, at, e.DownloadURL}
	case record.Failed:
		body = failedBody{Version, e.RecordID, e.ReportType, e.Status.String(), e.FailReason, at}
	default:
		return nil, fmt.Errorf("completion event of record %d: status %v is not final", e.RecordID, e.Status)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Attributes are the Pub/Sub message's attributes.
func (e Event) Attributes() map[string]string {
	return map[string]string{AttrRecordID: strconv.FormatInt(e.RecordID, 10), AttrStatus: e.Status.String()}
}

// MessageID is the RabbitMQ message_id of an event: "{recordId}-{status}",
// the same for every copy, so a consumer can drop duplicates by it.
func MessageID(recordID, status string) string { return recordID + "-" + status }
