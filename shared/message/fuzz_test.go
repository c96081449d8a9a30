package message_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/message"
)

// FuzzReadPush feeds arbitrary bodies to ReadPush through an HTTP request,
// then the message data to DecodeStage and DecodeDone, as a push function
// does. Nothing panics; refusals are classified (ErrUndecodable, or
// ErrVersion for a schema this code does not know); an accepted push has
// an ID and survives a JSON round trip; an accepted message names a
// positive record in this schema version.
func FuzzReadPush(f *testing.F) {
	push := func(data string, rest string) string {
		return `{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(data)) + `"` + rest + `},"subscription":"projects/p/subscriptions/s","deliveryAttempt":2}`
	}
	stage := `{"v":1,"recordId":1111,"reportType":"withdraw_by_tag","stage":1,"sources":["plt_fund.vs_withdraw"],"params":`
	for _, s := range []string{
		push(stage+`{"tagIds":[3,10],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}}`,
			`,"attributes":{"kind":"stage","recordId":"1111"},"messageId":"1","message_id":"1","publishTime":"2026-01-05T10:00:00.123Z"`),
		push(`{"v":1,"recordId":1111,"reportType":"withdraw_by_tag","stage":1,"source":"plt_fund.vs_withdraw"}`, `,"messageId":"2"`),
		push(`{"v":1,"recordId":1111,"reportType":"withdraw_by_tag","stage":1,"source":"s","failure":"bad params"}`, `,"message_id":"3"`),
		push(`{"v":2,"recordId":1111}`, `,"messageId":"4"`),
		push(`{"v":1,"recordId":0}`, `,"messageId":"5"`),
		push(`{"recordId":1111}`, `,"messageId":"6"`),
		push(`not json`, `,"messageId":"7"`),
		// Params from the hostile-upstream findings, carried in a stage message.
		push(stage+`{"tagIds":[1],"from":"2026-01-01T00:00:00.0000001Z","to":"2026-01-31T23:59:59.0000001Z"}}`, `,"messageId":"8"`),
		push(stage+`{"tagIds":[1],"from":"2026-01-01T00:00:00Z","to":"10000-01-01T11:59:59Z"}}`, `,"messageId":"9"`),
		push(stage+`{"tagIds":[1],"from":"0000-01-01T00:00:00Z","to":"2026-02-01t00:00:00z"}}`, `,"messageId":"10"`),
		// Keys doubled or in another case: encoding/json keeps the last
		// and matches case-insensitively.
		push(`{"v":1,"recordId":1,"recordId":2,"reportType":"r","stage":1,"source":"s"}`, `,"messageId":"11"`),
		push(`{"v":1,"RecordId":3,"reportType":"r","stage":1,"source":"s"}`, `,"MESSAGEID":"12"`),
		`{"message":{"messageId":"13","messageId":""}}`,
		`{"message":{"messageId":"14"}}`, `{"message":{"data":"e30=","messageId":"1"`,
		`{"message":{"data":"!!not base64!!","messageId":"1"}}`, `{"message":{"data":{"v":1},"messageId":"1"}}`,
		`{"message":{"messageId":"15"},"deliveryAttempt":-1}`, `{"message":{"messageId":"16"},"deliveryAttempt":1e400}`,
		`garbage`, ``, `[1]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := message.ReadPush(httptest.NewRequest("POST", "/", bytes.NewReader(body)))
		if err != nil {
			if !errors.Is(err, message.ErrUndecodable) || p != nil {
				t.Fatalf("ReadPush(%q) = %+v, %v; want nil and ErrUndecodable", body, p, err)
			}
			return
		}
		if p.ID() == "" {
			t.Fatalf("ReadPush(%q) accepted a push without a message ID", body)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("json.Marshal(%+v): %v", p, err)
		}
		back, err := message.ReadPush(httptest.NewRequest("POST", "/", bytes.NewReader(again)))
		if err != nil {
			t.Fatalf("ReadPush(%s), re-marshalled from %q: %v", again, body, err)
		}
		if diff := cmp.Diff(p, back); diff != "" {
			t.Errorf("push after a JSON round trip of %q (-want +got):\n%s", body, diff)
		}

		data := p.Message.Data
		if m, id, err := message.DecodeStage(data); err != nil {
			checkDecodeErr(t, "DecodeStage", data, err)
		} else if id <= 0 || id != m.RecordID || m.V < message.MinSchemaVersion || m.V > message.SchemaVersion || m.Parts < 1 || m.ReportType == "" || m.Stage < 1 {
			t.Errorf("DecodeStage(%q) = %+v, id %d", data, m, id)
		}
		if m, id, err := message.DecodeDone(data); err != nil {
			checkDecodeErr(t, "DecodeDone", data, err)
		} else if id <= 0 || id != m.RecordID || m.V < message.MinSchemaVersion || m.V > message.SchemaVersion || m.Parts < 1 || m.ReportType == "" || m.Stage < 1 || m.Source == "" {
			t.Errorf("DecodeDone(%q) = %+v, id %d", data, m, id)
		}
	})
}

func checkDecodeErr(t *testing.T, fn string, data []byte, err error) {
	t.Helper()
	undecodable, version := errors.Is(err, message.ErrUndecodable), errors.Is(err, message.ErrVersion)
	if undecodable == version {
		t.Errorf("%s(%q): %v; want exactly one of ErrUndecodable and ErrVersion", fn, data, err)
	}
}
