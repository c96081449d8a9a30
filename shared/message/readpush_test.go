package message_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/message"
)

// bigBody is a push body of n bytes made on the fly, so the test itself
// holds none of it: a push envelope whose data is n bytes of base64.
type bigBody struct {
	head, tail string
	n, read    int64
}

func newBigBody(n int64) *bigBody {
	return &bigBody{head: `{"message":{"messageId":"1","data":"`, tail: `"}}`, n: n}
}

func (b *bigBody) Read(p []byte) (int, error) {
	if b.read >= b.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.n-b.read)]
	for i := range p {
		switch off := b.read + int64(i); {
		case off < int64(len(b.head)):
			p[i] = b.head[off]
		case off >= b.n-int64(len(b.tail)):
			p[i] = b.tail[off-(b.n-int64(len(b.tail)))]
		default:
			p[i] = 'A'
		}
	}
	b.read += int64(len(p))
	return len(p), nil
}

// allocated returns the bytes f allocated on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A 50 MB push body used to cost about 32 MB per request before it was
// refused. Pub/Sub never sends more than MaxPushBytes: a larger body
// with a declared length is refused without reading a byte of it, and
// one without (chunked) after reading at most MaxPushBytes+1 bytes.
func TestReadPushRefusesBodiesPubSubCannotSend(t *testing.T) {
	const size = 50 << 20
	declared := newBigBody(size)
	var err error
	alloc := allocated(func() {
		r := httptest.NewRequest("POST", "/", declared)
		r.ContentLength = size
		_, err = message.ReadPush(r)
	})
	if !errors.Is(err, message.ErrTooLarge) || !errors.Is(err, message.ErrUndecodable) {
		t.Errorf("declared 50 MB: ReadPush error %v, want ErrTooLarge (and ErrUndecodable)", err)
	}
	if declared.read != 0 {
		t.Errorf("declared 50 MB: read %d bytes of the body, want 0", declared.read)
	}
	// The request and the error only: well under one body's worth.
	if alloc > 1<<20 {
		t.Errorf("declared 50 MB: allocated %d bytes, want under 1 MiB", alloc)
	}
	t.Logf("declared 50 MB body: %d bytes read, %d bytes allocated", declared.read, alloc)

	chunked := newBigBody(size)
	allocChunked := allocated(func() {
		r := httptest.NewRequest("POST", "/", io.MultiReader(chunked)) // hides the length
		r.ContentLength = -1
		_, err = message.ReadPush(r)
	})
	if !errors.Is(err, message.ErrTooLarge) {
		t.Errorf("chunked 50 MB: ReadPush error %v, want ErrTooLarge", err)
	}
	if chunked.read > message.MaxPushBytes+64<<10 {
		t.Errorf("chunked 50 MB: read %d bytes, want at most about MaxPushBytes (%d)", chunked.read, message.MaxPushBytes)
	}
	t.Logf("chunked 50 MB body: %d bytes read, %d bytes allocated", chunked.read, allocChunked)
}

// The largest message Pub/Sub can send, 10 MiB of data, still passes,
// and costs about the body plus the decoded data.
func TestReadPushAcceptsTheLargestPubSubMessage(t *testing.T) {
	data := bytes.Repeat([]byte{0xfb}, 10<<20)
	body := `{"message":{"data":"` + base64.StdEncoding.EncodeToString(data) + `","messageId":"1","message_id":"1",` +
		`"attributes":{"kind":"` + strings.Repeat(`\u0001`, 1024) + `"}},"subscription":"projects/p/subscriptions/s","deliveryAttempt":1}`
	if len(body) > message.MaxPushBytes {
		t.Fatalf("a push of 10 MiB is %d bytes, over MaxPushBytes %d", len(body), message.MaxPushBytes)
	}
	var p *message.Envelope
	var err error
	alloc := allocated(func() { p, err = message.ReadPush(httptest.NewRequest("POST", "/", strings.NewReader(body))) })
	if err != nil {
		t.Fatalf("ReadPush of a %d-byte push: %v", len(body), err)
	}
	if !bytes.Equal(p.Message.Data, data) {
		t.Errorf("data of %d bytes came back as %d bytes, or changed", len(data), len(p.Message.Data))
	}
	t.Logf("a %d-byte push (10 MiB of data) allocated %d bytes", len(body), alloc)
}
