package output_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/fanoutexport/fanoutexport/shared/output"
)

// BenchmarkCompose times Compose of a head and n segments of 64 rows
// each against fake-gcs-server in-process, from the head upload to the
// last delete, and reports its requests. The emulator answers in well
// under a millisecond but finds an object by scanning the bucket, so its
// time grows with the objects in it; against Cloud Storage each request
// is a round trip of tens of milliseconds, which the latency=30ms runs
// add to every request to model it. The requests per report carry over.
//
//	go test -run '^$' -bench Compose -benchtime 5x ./shared/output/
func BenchmarkCompose(b *testing.B) {
	for _, latency := range []time.Duration{0, 30 * time.Millisecond} {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("latency=%v/segments=%d", latency, n), func(b *testing.B) {
				benchmarkCompose(b, n, latency)
			})
		}
	}
}

func benchmarkCompose(b *testing.B, n int, latency time.Duration) {
	e := newComposeEnv(b)
	e.gcs.latency = latency
	all := rows(uint64(n), 64*n)
	cuts := evenCuts(len(all), n)
	bodies := make([][]byte, n)
	names := make([]string, n)
	var size int
	for i := range bodies {
		bodies[i] = segment(b, segFormat, all[cuts[i]:cuts[i+1]])
		size += len(bodies[i])
	}
	head, _ := segFormat.Head()
	b.SetBytes(int64(size + len(head)))
	var c output.Composed
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		id := int64(i)
		for j := range names {
			// Straight into the emulator: the segments' upload
			// is the parts' work, not the compose's.
			names[j] = output.SegmentName(id, j)
			e.srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "reports", Name: names[j]}, Content: bodies[j]})
		}
		e.gcs.reset()
		b.StartTimer()
		var err error
		if c, err = e.store.Compose(context.Background(), output.ObjectName(id, "withdraw_by_tag"), head, names); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.Composes), "composes/op")
	b.ReportMetric(float64(c.Deletes), "deletes/op")
	b.ReportMetric(float64(e.gcs.count("compose")+e.gcs.count("delete")+e.gcs.count("upload")+e.gcs.count("read")), "requests/op")
}
