package completion

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/record"
)

func TestEventJSON(t *testing.T) {
	t.Parallel()
	saoPaulo := time.FixedZone("BRT", -3*3600)
	// 10:04:05.678 in São Paulo is 13:04:05.678 UTC.
	at := time.Date(2026, 12, 1, 10, 4, 5, 678_900_000, saoPaulo)
	for _, tc := range []struct {
		name  string
		rec   record.Record
		url   string
		body  string
		attrs map[string]string
	}{{
		name: "success",
		rec: record.Record{ID: 42, ReportType: "withdraw_by_tag", Status: record.Success,
			FilePath: "gs://reports/reports/42/withdraw_by_tag.csv", RowCount: 3, FailReason: "ignored", UpdatedAt: at},
		body:  `{"v":1,"recordId":42,"reportType":"withdraw_by_tag","status":"SUCCESS","filePath":"gs://reports/reports/42/withdraw_by_tag.csv","rowCount":3,"finishedAt":"2026-12-01T13:04:05.678Z"}`,
		attrs: map[string]string{"recordId": "42", "status": "SUCCESS"},
	}, {
		name:  "success without rows keeps rowCount",
		rec:   record.Record{ID: 1, ReportType: "t", Status: record.Success, FilePath: "gs://b/o", UpdatedAt: at.UTC().Truncate(time.Second)},
		body:  `{"v":1,"recordId":1,"reportType":"t","status":"SUCCESS","filePath":"gs://b/o","rowCount":0,"finishedAt":"2026-12-01T13:04:05.000Z"}`,
		attrs: map[string]string{"recordId": "1", "status": "SUCCESS"},
	}, {
		name:  "success with a link, & not escaped",
		rec:   record.Record{ID: 2, ReportType: "t", Status: record.Success, FilePath: "gs://b/o", RowCount: 1, UpdatedAt: at},
		url:   "https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Expires=3600",
		body:  `{"v":1,"recordId":2,"reportType":"t","status":"SUCCESS","filePath":"gs://b/o","rowCount":1,"finishedAt":"2026-12-01T13:04:05.678Z","downloadUrl":"https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Expires=3600"}`,
		attrs: map[string]string{"recordId": "2", "status": "SUCCESS"},
	}, {
		name: "failed",
		rec: record.Record{ID: 9, ReportType: "withdraw_by_tag_with_payments", Status: record.Failed,
			FilePath: "gs://ignored", RowCount: 5, FailReason: `stage 1 listener "x" <failed> ☃`, UpdatedAt: at},
		body:  `{"v":1,"recordId":9,"reportType":"withdraw_by_tag_with_payments","status":"FAILED","failReason":"stage 1 listener \"x\" <failed> ☃","finishedAt":"2026-12-01T13:04:05.678Z"}`,
		attrs: map[string]string{"recordId": "9", "status": "FAILED"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, err := FromRecord(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			ev.DownloadURL = tc.url
			b, err := ev.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.body, string(b)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.attrs, ev.Attributes()); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventNotFinal(t *testing.T) {
	t.Parallel()
	for _, s := range []record.Status{record.Pending, record.Processing, 7} {
		if _, err := FromRecord(record.Record{ID: 1, Status: s}); err == nil {
			t.Errorf("FromRecord of a %v record: no error", s)
		}
		if _, err := (Event{RecordID: 1, Status: s}).MarshalJSON(); err == nil {
			t.Errorf("MarshalJSON of a %v event: no error", s)
		}
	}
}
