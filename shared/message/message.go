// Package message defines what the functions say to each other over
// Pub/Sub, and decodes the push JSON Pub/Sub POSTs to an HTTP function.
// Every message carries a schema version, so functions deployed at
// different times refuse what they do not understand instead of guessing.
package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// SchemaVersion is the version this code writes. Version 2 added the
// part (Part, Parts, Bounds); version 1 messages are still read, as the one
// part of a one-part report. Version 3 added Chunks: a report dispatched
// with Chunks "s2" stores its datasets as S2 chunks, which version 2 cannot
// read, so version 2 must refuse its messages (and it does: it retries a
// version it does not know). Versions 1 and 2 are read, so a deployment
// drains the reports started before it.
const SchemaVersion = 3

// MinSchemaVersion is the oldest version this code still reads.
const MinSchemaVersion = 1

// Attribute keys set on every message, so subscriptions can filter and
// logs can name a message without decoding it.
const (
	AttrSchema     = "schemaVersion"
	AttrKind       = "kind"
	AttrRecordID   = "recordId"
	AttrReportType = "reportType"
	AttrStage      = "stage"
	AttrSource     = "source"
	AttrPart       = "part" // "{part}/{parts}", from 0
)

// Kinds of message.
const (
	KindStage = "stage" // fan out a stage to its listeners
	KindDone  = "done"  // a listener finished (or failed for good)
)

// Stage tells the listeners of one stage to fetch their rows.
type Stage struct {
	V          int             `json:"v"`
	RecordID   int64           `json:"recordId"`
	ReportType string          `json:"reportType"`
	Stage      int             `json:"stage"`
	Sources    []string        `json:"sources"` // the listeners expected to answer
	Params     json.RawMessage `json:"params"`  // normalised report params
	// Chunks names the codec of the report's datasets: ChunksS2, or empty
	// for DEFLATE (a report the previous deployment dispatched). Set at
	// dispatch and passed on by every message of the report, so a report
	// is S2 throughout or DEFLATE throughout, whichever version of each
	// function handles it.
	Chunks string `json:"chunks,omitempty"`
	PartOf
}

// ChunksS2 is Chunks for datasets of S2 chunks (dataset.CodecNamed).
const ChunksS2 = "s2"

// PartOf names one part of a report: Part (from 0) of Parts, and the
// part's key range as the report package encodes it (opaque here). A
// one-part report has Part 0, Parts 1 and no Bounds (every key).
type PartOf struct {
	Part   int             `json:"part"`
	Parts  int             `json:"parts"`
	Bounds json.RawMessage `json:"bounds,omitempty"`
}

// Whole is the one part of a one-part report.
var Whole = PartOf{Part: 0, Parts: 1}

// check reads a message without a part count (version 1, written by the
// previous deployment) as Whole, and refuses a part outside its count.
func (p *PartOf) check() error {
	if p.Parts == 0 && p.Part == 0 && p.Bounds == nil {
		*p = Whole
	}
	if p.Parts < 1 || p.Part < 0 || p.Part >= p.Parts {
		return fmt.Errorf("%w: part %d of %d", ErrUndecodable, p.Part, p.Parts)
	}
	return nil
}

// Done tells the aggregator that one listener finished a stage.
type Done struct {
	V          int    `json:"v"`
	RecordID   int64  `json:"recordId"`
	ReportType string `json:"reportType"`
	Stage      int    `json:"stage"`
	Source     string `json:"source"`
	// Failure, when set, is a permanent error: the record must end FAILED
	// with this reason, without retrying.
	Failure string `json:"failure,omitempty"`
	Chunks  string `json:"chunks,omitempty"` // the stage message's, passed on
	PartOf
}

// Attributes returns the attributes to publish with m.
func (m Stage) Attributes() map[string]string {
	return map[string]string{
		AttrSchema: strconv.Itoa(m.V), AttrKind: KindStage, AttrRecordID: strconv.FormatInt(m.RecordID, 10),
		AttrReportType: m.ReportType, AttrStage: strconv.Itoa(m.Stage), AttrPart: m.PartOf.attr(),
	}
}

func (p PartOf) attr() string { return strconv.Itoa(p.Part) + "/" + strconv.Itoa(p.Parts) }

// Attributes returns the attributes to publish with m.
func (m Done) Attributes() map[string]string {
	return map[string]string{
		AttrSchema: strconv.Itoa(m.V), AttrKind: KindDone, AttrRecordID: strconv.FormatInt(m.RecordID, 10),
		AttrReportType: m.ReportType, AttrStage: strconv.Itoa(m.Stage), AttrSource: m.Source, AttrPart: m.PartOf.attr(),
	}
}

// ErrUndecodable marks a message nobody can act on: it is parked, not retried.
var ErrUndecodable = errors.New("undecodable message")

// ErrVersion marks a message of a schema version this code does not know.
// It is retried: during a deployment a newer instance may take it.
var ErrVersion = errors.New("unsupported message schema version")

// header is the part every kind shares, decoded first to check the version.
type header struct {
	V        *int   `json:"v"`
	RecordID *int64 `json:"recordId"`
}

func decode(data []byte, v any) (int64, error) {
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if h.RecordID == nil || *h.RecordID <= 0 {
		return 0, fmt.Errorf("%w: no positive recordId", ErrUndecodable)
	}
	if h.V == nil {
		return *h.RecordID, fmt.Errorf("%w: no schema version", ErrUndecodable)
	}
	if *h.V < MinSchemaVersion || *h.V > SchemaVersion {
		return *h.RecordID, fmt.Errorf("%w: got %d, this deployment understands %d to %d", ErrVersion, *h.V, MinSchemaVersion, SchemaVersion)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return *h.RecordID, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	return *h.RecordID, nil
}

// DecodeStage decodes a stage message. The record ID is returned whenever
// it could be read, so a failure can still be attributed to its record.
func DecodeStage(data []byte) (Stage, int64, error) {
	var m Stage
	id, err := decode(data, &m)
	if err == nil && (m.ReportType == "" || m.Stage < 1) {
		err = fmt.Errorf("%w: stage message without reportType or stage", ErrUndecodable)
	}
	if err == nil {
		err = m.PartOf.check()
	}
	return m, id, err
}

// DecodeDone decodes a done message.
func DecodeDone(data []byte) (Done, int64, error) {
	var m Done
	id, err := decode(data, &m)
	if err == nil && (m.ReportType == "" || m.Stage < 1 || m.Source == "") {
		err = fmt.Errorf("%w: done message without reportType, stage or source", ErrUndecodable)
	}
	if err == nil {
		err = m.PartOf.check()
	}
	return m, id, err
}

// Envelope is the JSON body Pub/Sub POSTs to a push endpoint; the local
// relay encodes the same type, so both sides agree on it by construction.
type Envelope struct {
	Message      PushMessage `json:"message"`
	Subscription string      `json:"subscription"`
	// DeliveryAttempt is set when the subscription has a dead-letter policy.
	DeliveryAttempt int `json:"deliveryAttempt,omitempty"`
}

// PushMessage is the message inside a push body. Pub/Sub sends the ID and
// publish time under both their camelCase and snake_case keys.
type PushMessage struct {
	Data        []byte            `json:"data,omitempty"` // base64 in JSON
	Attributes  map[string]string `json:"attributes,omitempty"`
	MessageID   string            `json:"messageId"`
	MessageID2  string            `json:"message_id"`
	PublishTime string            `json:"publishTime"`
	PublishOld  string            `json:"publish_time"`
	OrderingKey string            `json:"orderingKey,omitempty"`
}

// Attributes Pub/Sub adds to a message it forwards to a dead-letter topic
// (pstest adds none; the local relay adds them as Pub/Sub does).
const (
	AttrDeadLetterDeliveryCount       = "CloudPubSubDeadLetterSourceDeliveryCount"
	AttrDeadLetterSubscription        = "CloudPubSubDeadLetterSourceSubscription"
	AttrDeadLetterSubscriptionProject = "CloudPubSubDeadLetterSourceSubscriptionProject"
	AttrDeadLetterTopicPublishTime    = "CloudPubSubDeadLetterSourceTopicPublishTime"
)

// Header is what any of our messages says about its report, read
// leniently: a message that failed because of its own shape still names
// its record, so the failure can be attributed to it.
type Header struct {
	V          int      `json:"v"`
	RecordID   int64    `json:"recordId"`
	ReportType string   `json:"reportType"`
	Stage      int      `json:"stage"`
	Source     string   `json:"source"`  // done messages
	Sources    []string `json:"sources"` // stage messages
	PartOf
}

// Peek reads the header of data, filling what the body lacks from the
// message's attributes. Fields it cannot read stay zero.
func Peek(data []byte, attrs map[string]string) Header {
	// Field by field, so one field of the wrong type does not hide the rest.
	var h Header
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) == nil {
		_ = json.Unmarshal(fields["v"], &h.V)
		_ = json.Unmarshal(fields["recordId"], &h.RecordID)
		_ = json.Unmarshal(fields["reportType"], &h.ReportType)
		_ = json.Unmarshal(fields["stage"], &h.Stage)
		_ = json.Unmarshal(fields["source"], &h.Source)
		_ = json.Unmarshal(fields["sources"], &h.Sources)
		_ = json.Unmarshal(fields["part"], &h.Part)
		_ = json.Unmarshal(fields["parts"], &h.Parts)
		h.Bounds = fields["bounds"]
	}
	if h.Parts < 1 || h.Part < 0 || h.Part >= h.Parts {
		h.PartOf = Whole
		if p, n, ok := strings.Cut(attrs[AttrPart], "/"); ok {
			pi, err1 := strconv.Atoi(p)
			ni, err2 := strconv.Atoi(n)
			if err1 == nil && err2 == nil && ni >= 1 && pi >= 0 && pi < ni {
				h.Part, h.Parts = pi, ni
			}
		}
	}
	if h.RecordID <= 0 {
		h.RecordID, _ = strconv.ParseInt(attrs[AttrRecordID], 10, 64)
		h.RecordID = max(h.RecordID, 0)
	}
	if h.ReportType == "" {
		h.ReportType = attrs[AttrReportType]
	}
	if h.Stage <= 0 {
		h.Stage, _ = strconv.Atoi(attrs[AttrStage])
		h.Stage = max(h.Stage, 0)
	}
	if h.Source == "" {
		h.Source = attrs[AttrSource]
	}
	return h
}

// ID returns the message ID under either key Pub/Sub sends it.
func (p *Envelope) ID() string {
	if p.Message.MessageID != "" {
		return p.Message.MessageID
	}
	return p.Message.MessageID2
}

// MaxPushBytes bounds a push body at the largest one Pub/Sub can send.
// A message is at most 10 MiB, data and attributes together; the push
// JSON carries the data in base64 (4/3 of it: 13,981,014 bytes for
// 10 MiB) and escapes the attributes (at most 100 of 1,280 bytes, 6 bytes
// per escaped byte: 768,000), a few hundred bytes of envelope besides.
// 14 MiB covers the worst case, 14,578,347 bytes plus the envelope.
const MaxPushBytes = 14 << 20

// ErrTooLarge marks a push body larger than Pub/Sub can send. It is also
// ErrUndecodable: nobody can act on it.
var ErrTooLarge = fmt.Errorf("%w: push body larger than %d bytes, more than Pub/Sub sends", ErrUndecodable, MaxPushBytes)

// ReadPush decodes the push request. A body that is not push JSON is
// ErrUndecodable; the caller answers 400, which Pub/Sub retries and
// finally dead-letters, so even that body is kept. A body larger than
// MaxPushBytes is refused (ErrTooLarge) without being read into memory
// when its length is declared, and after at most MaxPushBytes otherwise.
func ReadPush(r *http.Request) (*Envelope, error) {
	if r.ContentLength > MaxPushBytes {
		return nil, fmt.Errorf("%w: Content-Length %d", ErrTooLarge, r.ContentLength)
	}
	body, err := readBody(http.MaxBytesReader(nil, r.Body, MaxPushBytes), r.ContentLength)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, ErrTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("read push body: %w", err)
	}
	var p Envelope
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: push body: %v", ErrUndecodable, err)
	}
	if p.ID() == "" {
		return nil, fmt.Errorf("%w: push body without message id", ErrUndecodable)
	}
	return &p, nil
}

// pieceBytes is the read size for a body of unknown length.
const pieceBytes = 256 << 10

// readBody reads a body of declared length n (-1: unknown) in one
// allocation of its size, or, unknown, in pieces joined at the end: a
// growing buffer would allocate about twice the body (33 MB measured for
// a refused chunked body, against 14.7 MB in pieces).
func readBody(r io.Reader, n int64) ([]byte, error) {
	if n >= 0 {
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	var pieces [][]byte
	for {
		p := make([]byte, pieceBytes)
		k, err := io.ReadFull(r, p)
		pieces = append(pieces, p[:k])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return bytes.Join(pieces, nil), nil
}
