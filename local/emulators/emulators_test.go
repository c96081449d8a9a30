package emulators

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pubsub "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

func startPubSub(t *testing.T) string {
	t.Helper()
	srv, err := StartPubSub("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr
}

func TestStartPubSubBusyAddress(t *testing.T) {
	t.Parallel()
	addr := startPubSub(t)
	if srv, err := StartPubSub(addr); err == nil {
		srv.Close()
		t.Fatalf("second emulator on %s: want an error", addr)
	}
}

func TestCreateTopology(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	addr := startPubSub(t)
	const project = "local-test"
	names := topology.Names{Prefix: "t1-"}
	fns := topology.Functions()
	stages := report.MaxStages()

	// Twice: the second run must accept what the first created.
	for range 2 {
		if err := CreateTopology(ctx, addr, project, names, fns, stages, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	tc, err := pubsub.NewTopicAdminClient(ctx, PubSubOptions(addr)...)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	for _, topic := range topology.Topics() {
		name := TopicName(project, names.Topic(topic))
		if _, err := tc.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: name}); err != nil {
			t.Errorf("GetTopic(%s): %v", name, err)
		}
	}

	sc, err := pubsub.NewSubscriptionAdminClient(ctx, PubSubOptions(addr)...)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	type view struct {
		Topic       string
		AckDeadline int32
		DeadLetter  string
		MaxAttempts int32
	}
	get := func(sub string) view {
		t.Helper()
		s, err := sc.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: SubscriptionName(project, names.Sub(sub))})
		if err != nil {
			t.Fatalf("GetSubscription(%s): %v", sub, err)
		}
		if s.GetPushConfig().GetPushEndpoint() != "" {
			t.Errorf("%s: push endpoint %q, want a pull subscription", sub, s.GetPushConfig().GetPushEndpoint())
		}
		return view{s.Topic, s.AckDeadlineSeconds, s.GetDeadLetterPolicy().GetDeadLetterTopic(), s.GetDeadLetterPolicy().GetMaxDeliveryAttempts()}
	}
	push := 0
	for _, f := range fns {
		if f.Kind != topology.KindPush {
			continue
		}
		push++
		want := view{
			Topic:       TopicName(project, names.Topic(f.Topic)),
			AckDeadline: 30,
			DeadLetter:  TopicName(project, names.Topic(f.DeadLetterTopic)),
			MaxAttempts: int32(f.MaxDeliveryAttempts),
		}
		if d := cmp.Diff(want, get(f.Subscription)); d != "" {
			t.Errorf("subscription %s (-want +got):\n%s", f.Subscription, d)
		}
	}
	if push < 4 {
		t.Errorf("only %d push functions in topology.Functions(); want listeners, aggregator and DLQ", push)
	}
	wantParked := view{Topic: TopicName(project, names.Topic(topology.TopicParked)), AckDeadline: 30}
	if d := cmp.Diff(wantParked, get(topology.SubParked)); d != "" {
		t.Errorf("parked subscription (-want +got):\n%s", d)
	}
	wantCompleted := view{Topic: TopicName(project, names.Topic(topology.TopicCompleted)), AckDeadline: 30}
	if d := cmp.Diff(wantCompleted, get(topology.SubCompletedAMQP)); d != "" {
		t.Errorf("completed-amqp subscription (-want +got):\n%s", d)
	}

	// A rerun with another ack deadline updates the existing subscriptions.
	if err := CreateTopology(ctx, addr, project, names, fns, stages, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := get(topology.SubAggregate).AckDeadline; got != 20 {
		t.Errorf("after rerun: ack deadline %d, want 20", got)
	}
}

func TestCreateTopologyUnknownTopic(t *testing.T) {
	t.Parallel()
	addr := startPubSub(t)
	fns := []topology.Function{{EntryPoint: "X", Kind: topology.KindPush, Topic: "no-such-topic", Subscription: "x"}}
	err := CreateTopology(t.Context(), addr, "p", topology.Names{}, fns, 1, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "CreateSubscription") {
		t.Fatalf("err = %v, want a CreateSubscription error", err)
	}
}

// TestGCSStorageClient cannot run in parallel: the storage client reads
// STORAGE_EMULATOR_HOST, a process-wide setting.
func TestGCSStorageClient(t *testing.T) {
	const bucket = "exports"
	srv, err := StartGCS("127.0.0.1", 0, bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "http" {
		t.Fatalf("URL %s: want plain http", srv.URL())
	}

	payload := make([]byte, 1<<20+123) // a little over 4 chunks of 256 KiB
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}

	// A proxy in front of fake-gcs counts the chunk uploads, to prove the
	// resumable upload really went in several requests.
	var chunks atomic.Int64
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			// The Go client sends each chunk as a POST to the session URL
			// with a Content-Range header.
			if strings.HasPrefix(r.In.URL.Path, "/upload/") && r.In.URL.Query().Has("upload_id") && r.In.Header.Get("Content-Range") != "" {
				chunks.Add(1)
			}
			r.SetURL(u)
			r.Out.Host = r.In.Host // fake-gcs routes XML reads by Host
		},
	})
	defer proxy.Close()
	proxyHost := strings.TrimPrefix(proxy.URL, "http://")

	for _, tc := range []struct{ name, env string }{
		{"host:port", u.Host},
		{"http://host:port", "http://" + u.Host},
		{"through counting proxy", proxyHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORAGE_EMULATOR_HOST", tc.env)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			client, err := storage.NewClient(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()

			object := "reports/" + strings.ReplaceAll(tc.name, "/", "_") + "/42.csv"
			w := client.Bucket(bucket).Object(object).NewWriter(ctx)
			w.ChunkSize = 256 << 10
			w.ContentType = "text/csv"
			before := chunks.Load()
			if _, err := io.Copy(w, bytes.NewReader(payload)); err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("close writer: %v", err)
			}
			if tc.env == proxyHost {
				if n := chunks.Load() - before; n < 5 {
					t.Errorf("%d chunk uploads, want at least 5 for %d bytes in 256 KiB chunks", n, len(payload))
				}
			}

			attrs, err := client.Bucket(bucket).Object(object).Attrs(ctx)
			if err != nil {
				t.Fatalf("attrs: %v", err)
			}
			if attrs.ContentType != "text/csv" || attrs.Size != int64(len(payload)) {
				t.Errorf("attrs: content type %q size %d, want text/csv %d", attrs.ContentType, attrs.Size, len(payload))
			}

			// Read back through the client (XML API path) ...
			r, err := client.Bucket(bucket).Object(object).NewReader(ctx)
			if err != nil {
				t.Fatalf("reader: %v", err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("client read %d bytes, want the %d written", len(got), len(payload))
			}

			// ... and through the JSON API's alt=media, as the tests do.
			mediaURL := srv.URL() + "/storage/v1/b/" + bucket + "/o/" + url.PathEscape(object) + "?alt=media"
			resp, err := http.Get(mediaURL)
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got, payload) {
				t.Errorf("GET %s: %s, %d bytes; want 200 and the %d written", mediaURL, resp.Status, len(got), len(payload))
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
				t.Errorf("alt=media Content-Type %q, want text/csv", ct)
			}
		})
	}
}

func TestStartGCSBusyPort(t *testing.T) {
	t.Parallel()
	srv, err := StartGCS("127.0.0.1", 0, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := StartGCS("127.0.0.1", uint16(port), "b"); err == nil {
		s2.Stop()
		t.Fatalf("second fake-gcs on port %d: want an error", port)
	}
}
