package message_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/message"
)

func TestStageRoundTrip(t *testing.T) {
	t.Parallel()
	want := message.Stage{V: message.SchemaVersion, RecordID: 1111, ReportType: "withdraw_by_tag", Stage: 1,
		Sources: []string{"plt_user.vs_user_tag_relation", "plt_fund.vs_withdraw"},
		Params:  json.RawMessage(`{"tagIds":[3,10],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`),
		Chunks:  message.ChunksS2,
		PartOf:  message.PartOf{Part: 3, Parts: 7, Bounds: json.RawMessage(`{"lo":100,"hi":200}`)}}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, id, err := message.DecodeStage(b)
	if err != nil || id != 1111 {
		t.Fatalf("DecodeStage = id %d, %v; want 1111, nil", id, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeStage (-want +got):\n%s", diff)
	}
	wantAttrs := map[string]string{"schemaVersion": "3", "kind": "stage", "recordId": "1111", "reportType": "withdraw_by_tag", "stage": "1", "part": "3/7"}
	if diff := cmp.Diff(wantAttrs, want.Attributes()); diff != "" {
		t.Errorf("Stage.Attributes (-want +got):\n%s", diff)
	}
}

func TestDoneRoundTrip(t *testing.T) {
	t.Parallel()
	for _, want := range []message.Done{
		{V: message.SchemaVersion, RecordID: 1111, ReportType: "withdraw_by_tag_with_payments", Stage: 2, Source: "plt_fund.vs_payment", Chunks: message.ChunksS2, PartOf: message.Whole},
		{V: message.SchemaVersion, RecordID: 9223372036854775807, ReportType: "withdraw_by_tag", Stage: 1, Source: "plt_fund.vs_withdraw", Failure: `bad "params"` + "\n日本語",
			PartOf: message.PartOf{Part: 0, Parts: 2, Bounds: json.RawMessage(`{"hi":5}`)}},
	} {
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, id, err := message.DecodeDone(b)
		if err != nil || id != want.RecordID {
			t.Fatalf("DecodeDone(%s) = id %d, %v", b, id, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("DecodeDone (-want +got):\n%s", diff)
		}
		if want.Failure == "" && strings.Contains(string(b), "failure") {
			t.Errorf("a done message without failure carries the key: %s", b)
		}
	}
	d := message.Done{V: 1, RecordID: 7, ReportType: "r", Stage: 2, Source: "s", PartOf: message.Whole}
	wantAttrs := map[string]string{"schemaVersion": "1", "kind": "done", "recordId": "7", "reportType": "r", "stage": "2", "source": "s", "part": "0/1"}
	if diff := cmp.Diff(wantAttrs, d.Attributes()); diff != "" {
		t.Errorf("Done.Attributes (-want +got):\n%s", diff)
	}
}

// A version-1 message, written by the previous deployment, is read as the
// one part of a one-part report: a deployment drains the reports started
// before it.
func TestVersion1IsTheWholeReport(t *testing.T) {
	t.Parallel()
	st, _, err := message.DecodeStage([]byte(`{"v":1,"recordId":5,"reportType":"r","stage":1,"sources":["s"],"params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(message.Whole, st.PartOf); diff != "" {
		t.Errorf("stage v1 part (-want +got):\n%s", diff)
	}
	d, _, err := message.DecodeDone([]byte(`{"v":1,"recordId":5,"reportType":"r","stage":2,"source":"s"}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(message.Whole, d.PartOf); diff != "" {
		t.Errorf("done v1 part (-want +got):\n%s", diff)
	}
	h := message.Peek([]byte(`{"v":1,"recordId":5}`), map[string]string{"part": "4/9"})
	if diff := cmp.Diff(message.PartOf{Part: 4, Parts: 9}, h.PartOf); diff != "" {
		t.Errorf("Peek part from attributes (-want +got):\n%s", diff)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    string
		stage   bool // DecodeStage, else DecodeDone
		wantID  int64
		wantErr error
	}{
		{"not JSON", "garbage", true, 0, message.ErrUndecodable},
		{"empty", "", false, 0, message.ErrUndecodable},
		{"JSON array", `[1]`, true, 0, message.ErrUndecodable},
		{"no recordId", `{"v":1,"reportType":"r","stage":1,"source":"s"}`, false, 0, message.ErrUndecodable},
		{"recordId zero", `{"v":1,"recordId":0,"reportType":"r","stage":1}`, true, 0, message.ErrUndecodable},
		{"recordId negative", `{"v":1,"recordId":-4,"reportType":"r","stage":1}`, true, 0, message.ErrUndecodable},
		{"recordId a string", `{"v":1,"recordId":"7","reportType":"r","stage":1}`, true, 0, message.ErrUndecodable},
		{"no version", `{"recordId":7,"reportType":"r","stage":1}`, true, 7, message.ErrUndecodable},
		{"newer version", `{"v":4,"recordId":7,"reportType":"r","stage":1,"future":true}`, true, 7, message.ErrVersion},
		{"older version", `{"v":0,"recordId":7,"reportType":"r","stage":1,"source":"s"}`, false, 7, message.ErrVersion},
		{"stage without reportType", `{"v":1,"recordId":7,"stage":1}`, true, 7, message.ErrUndecodable},
		{"stage 0", `{"v":1,"recordId":7,"reportType":"r","stage":0}`, true, 7, message.ErrUndecodable},
		{"stage of the wrong type", `{"v":1,"recordId":7,"reportType":"r","stage":"1"}`, true, 7, message.ErrUndecodable},
		{"done without source", `{"v":1,"recordId":7,"reportType":"r","stage":1}`, false, 7, message.ErrUndecodable},
		{"done without stage", `{"v":1,"recordId":7,"reportType":"r","source":"s"}`, false, 7, message.ErrUndecodable},
		{"part past its count", `{"v":2,"recordId":7,"reportType":"r","stage":1,"part":2,"parts":2}`, true, 7, message.ErrUndecodable},
		{"negative part", `{"v":2,"recordId":7,"reportType":"r","stage":1,"source":"s","part":-1,"parts":2}`, false, 7, message.ErrUndecodable},
		{"bounds without a count", `{"v":2,"recordId":7,"reportType":"r","stage":1,"bounds":{"lo":1}}`, true, 7, message.ErrUndecodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var id int64
			var err error
			if tt.stage {
				_, id, err = message.DecodeStage([]byte(tt.data))
			} else {
				_, id, err = message.DecodeDone([]byte(tt.data))
			}
			if !errors.Is(err, tt.wantErr) || id != tt.wantID {
				t.Errorf("decode(%s) = id %d, %v; want id %d and %v", tt.data, id, err, tt.wantID, tt.wantErr)
			}
			if errors.Is(err, message.ErrVersion) && errors.Is(err, message.ErrUndecodable) {
				t.Errorf("error %v is both ErrVersion and ErrUndecodable", err)
			}
		})
	}
}

func TestReadPush(t *testing.T) {
	t.Parallel()
	data := []byte(`{"v":1,"recordId":1111}`)
	b64 := base64.StdEncoding.EncodeToString(data)
	type want struct {
		ID              string
		Data            string
		Attributes      map[string]string
		Subscription    string
		DeliveryAttempt int
	}
	tests := []struct {
		name string
		body string
		want want
	}{
		{"both id keys, as Pub/Sub sends", `{"message":{"attributes":{"kind":"done","recordId":"1111"},"data":"` + b64 +
			`","messageId":"2070443601311540","message_id":"2070443601311540","publishTime":"2026-01-05T10:00:00.123Z","publish_time":"2026-01-05T10:00:00.123Z"},` +
			`"subscription":"projects/p/subscriptions/aggregate","deliveryAttempt":3}`,
			want{"2070443601311540", string(data), map[string]string{"kind": "done", "recordId": "1111"}, "projects/p/subscriptions/aggregate", 3}},
		{"messageId only", `{"message":{"data":"` + b64 + `","messageId":"42"},"subscription":"s"}`,
			want{"42", string(data), nil, "s", 0}},
		{"message_id only", `{"message":{"data":"` + b64 + `","message_id":"43"},"subscription":"s","deliveryAttempt":1}`,
			want{"43", string(data), nil, "s", 1}},
		{"no data", `{"message":{"messageId":"44"}}`, want{"44", "", nil, "", 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			p, err := message.ReadPush(r)
			if err != nil {
				t.Fatalf("ReadPush: %v", err)
			}
			got := want{p.ID(), string(p.Message.Data), p.Message.Attributes, p.Subscription, p.DeliveryAttempt}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ReadPush (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadPushRejects(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"garbage":        "garbage",
		"empty":          "",
		"not an object":  `[1]`,
		"no message id":  `{"message":{"data":"e30="},"subscription":"s"}`,
		"bad base64":     `{"message":{"data":"!!not base64!!","messageId":"1"}}`,
		"data not bytes": `{"message":{"data":{"v":1},"messageId":"1"}}`,
		"truncated":      `{"message":{"data":"e30=","messageId":"1"`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/", strings.NewReader(body))
			if p, err := message.ReadPush(r); !errors.Is(err, message.ErrUndecodable) {
				t.Errorf("ReadPush(%q) = %+v, %v; want ErrUndecodable", body, p, err)
			}
		})
	}
}
