package output_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/shared/output"
)

// gcsCounter is the storage client's transport in these tests: it counts
// the requests by kind and can interrupt the run for real at the n-th
// request of a kind, by cancelling the run's context before the request
// leaves (it never reaches the server) or after the server answered (the
// server did the work; the client never hears of it).
type gcsCounter struct {
	next http.RoundTripper

	// latency delays every request (benchmarks only: a model of a
	// round trip to Cloud Storage).
	latency time.Duration

	mu     sync.Mutex
	counts map[string]int
	crash  *crashAt
	// conditions maps each compose's destination to its
	// ifGenerationMatch parameter ("" if none).
	conditions map[string]string
}

type crashAt struct {
	kind   string
	n      int
	after  bool
	cancel context.CancelFunc
}

// kind names a request: compose, delete, upload, or read (attributes,
// listings, downloads).
func kind(r *http.Request) string {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/compose"):
		return "compose"
	case r.Method == http.MethodDelete:
		return "delete"
	case strings.Contains(r.URL.Path, "/upload/"):
		return "upload"
	}
	return "read"
}

func (c *gcsCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	k := kind(r)
	c.mu.Lock()
	c.counts[k]++
	if k == "compose" {
		dst, _ := url.PathUnescape(strings.TrimSuffix(r.URL.EscapedPath()[strings.Index(r.URL.EscapedPath(), "/o/")+3:], "/compose"))
		c.conditions[dst] = r.URL.Query().Get("ifGenerationMatch")
	}
	cr := c.crash
	hit := cr != nil && cr.kind == k && cr.n == c.counts[k]
	if hit {
		c.crash = nil
	}
	c.mu.Unlock()
	if hit && !cr.after {
		cr.cancel()
		<-r.Context().Done() // the request's context derives from the run's
	}
	if c.latency > 0 {
		time.Sleep(c.latency)
	}
	resp, err := c.next.RoundTrip(r)
	if hit && cr.after && err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cr.cancel()
		return nil, context.Canceled
	}
	return resp, err
}

func (c *gcsCounter) count(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}

func (c *gcsCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = map[string]int{}
	c.conditions = map[string]string{}
}

// crashAt arms an interruption of the run whose context cancel cancels.
func (c *gcsCounter) crashAt(kind string, n int, after bool, cancel context.CancelFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.crash = &crashAt{kind: kind, n: n, after: after, cancel: cancel}
}

// composeEnv is one test's emulator with bucket "reports" and a Store
// whose requests go through a gcsCounter.
type composeEnv struct {
	srv    *fakestorage.Server
	client *storage.Client
	store  *output.Store
	gcs    *gcsCounter
}

func newComposeEnv(t testing.TB) composeEnv {
	t.Helper()
	srv, err := emulators.StartGCS("127.0.0.1", 0, "reports")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	gcs := &gcsCounter{next: http.DefaultTransport.(*http.Transport).Clone(), counts: map[string]int{}, conditions: map[string]string{}}
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(srv.URL()+"/storage/v1/"),
		option.WithHTTPClient(&http.Client{Transport: gcs}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return composeEnv{srv: srv, client: c, store: output.NewStore(c, "reports"), gcs: gcs}
}

// writeSegments uploads one segment per part of rows cut at cuts (first
// 0, last len(rows)) for record id, as the aggregator does, and returns
// their names in part order. Past 100 segments they go straight into the
// emulator: its uploads are slow to no purpose there (it finds an object
// by scanning the bucket), and the upload path is the same as below 100.
func (e composeEnv) writeSegments(t testing.TB, id int64, f output.Format, all [][]string, cuts []int) []string {
	t.Helper()
	names := make([]string, len(cuts)-1)
	g := new(errgroup.Group)
	g.SetLimit(16)
	for i := range names {
		names[i] = output.SegmentName(id, i)
		body := segment(t, f, all[cuts[i]:cuts[i+1]])
		if len(names) > 100 {
			e.srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "reports", Name: names[i], ContentType: "text/csv"}, Content: body})
			continue
		}
		g.Go(func() error {
			return e.store.WriteNew(context.Background(), names[i], func(w io.Writer) error { _, err := w.Write(body); return err })
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return names
}

// object is dst's content and generation.
func (e composeEnv) object(t *testing.T, name string) ([]byte, int64) {
	t.Helper()
	obj, err := e.srv.GetObject("reports", name)
	if err != nil {
		t.Fatalf("final object: %v", err)
	}
	return obj.Content, obj.Generation
}

// left is what is left under the record's temporary prefix.
func (e composeEnv) left(t *testing.T, id int64) []string {
	t.Helper()
	objs, _, err := e.srv.ListObjectsWithOptions("reports", fakestorage.ListOptions{Prefix: output.SegmentPrefix(id)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	return names
}

// evenCuts cuts n rows into parts parts, some of them empty when rows are
// fewer than parts, and part 1 always empty (an empty key range).
func evenCuts(n, parts int) []int {
	cuts := make([]int, parts+1)
	for i := range cuts {
		cuts[i] = n * i / parts
	}
	if parts > 2 {
		cuts[2] = cuts[1]
	}
	return cuts
}

// Compose assembles head + segments into the single writer's file, byte
// for byte, with one compose request at 2..32 sources and a tree past
// that, the fewest requests possible; the final object is text/csv, and
// nothing is left under the record's temporary prefix.
func TestCompose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		segments, rows int
		bom            bool
	}{
		{1, 50, false},
		{2, 50, true},
		{31, 400, false}, // head + 31 = 32 sources: one request
		{32, 400, true},  // 33 sources: the smallest tree
		{33, 400, false},
		{100, 0, true},     // a header-only report split into empty parts
		{1024, 3000, true}, // 1025 sources: three levels, 34 requests
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d segments, %d rows, bom %v", tt.segments, tt.rows, tt.bom), func(t *testing.T) {
			t.Parallel()
			if tt.segments > 100 && (testing.Short() || raceDetector) {
				// 16 s, 2 minutes under -race: fake-gcs-server scans the
				// bucket for every request. The concurrent paths are the
				// same as with 33 segments; make test runs it (no -race).
				t.Skip("a thousand segments: slow in the emulator, slower under -race")
			}
			e := newComposeEnv(t)
			const id = 42
			f := segFormat
			f.BOM = tt.bom
			all := rows(uint64(tt.segments), tt.rows)
			names := e.writeSegments(t, id, f, all, evenCuts(tt.rows, tt.segments))
			head, err := f.Head()
			if err != nil {
				t.Fatal(err)
			}
			dst := output.ObjectName(id, "withdraw_by_tag")
			e.gcs.reset()
			c, err := e.store.Compose(context.Background(), dst, head, names)
			if err != nil {
				t.Fatalf("Compose: %v", err)
			}
			got, gen := e.object(t, dst)
			want := single(t, f, all)
			if !bytes.Equal(want, got) {
				t.Fatalf("composed object differs from the single writer's at byte %d of %d/%d", firstDiff(want, got), len(want), len(got))
			}
			// Exactly one mark, at the start (a cell may hold U+FEFF too).
			header, _, _ := bytes.Cut(got, []byte("\n"))
			if n := bytes.Count(header, []byte("\uFEFF")); n != map[bool]int{true: 1}[tt.bom] || tt.bom != bytes.HasPrefix(got, []byte("\uFEFF")) {
				t.Errorf("header line %q: %d byte-order marks, want %d at the start", header, n, map[bool]int{true: 1}[tt.bom])
			}
			wantC := output.Composed{Size: int64(len(want)), Generation: gen, Uploads: 1,
				Composes: output.ComposeRequests(tt.segments), Deletes: tt.segments + 1 + output.ComposeRequests(tt.segments) - 1}
			if diff := cmp.Diff(wantC, c); diff != "" {
				t.Errorf("Composed (-want +got):\n%s", diff)
			}
			// Counted on the wire, not by Compose itself.
			if got := e.gcs.count("compose"); got != wantC.Composes {
				t.Errorf("%d compose requests on the wire, want %d", got, wantC.Composes)
			}
			// The final compose, and only it, asks Cloud Storage for
			// DoesNotExist (the emulator ignores it: the canary).
			for name, cond := range e.gcs.conditions {
				if want := map[bool]string{true: "0"}[name == dst]; cond != want {
					t.Errorf("compose into %s sent ifGenerationMatch=%q, want %q", name, cond, want)
				}
			}
			if _, ok := e.gcs.conditions[dst]; !ok {
				t.Errorf("no compose into %s seen (composes into %v)", dst, e.gcs.conditions)
			}
			if left := e.left(t, id); len(left) != 0 {
				t.Errorf("left under %s: %d objects, first %s", output.SegmentPrefix(id), len(left), left[0])
			}
			attrs, err := e.srv.GetObject("reports", dst)
			if err != nil || attrs.ContentType != "text/csv" {
				t.Errorf("final object content type %q (%v), want text/csv", attrs.ContentType, err)
			}
			rowsBack, err := e.store.CountRows(context.Background(), dst)
			if err != nil || rowsBack != int64(tt.rows) {
				t.Errorf("CountRows = %d, %v; want %d", rowsBack, err, tt.rows)
			}
		})
	}
}

// With no segments, the head alone is the report.
func TestComposeNoSegments(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	dst := output.ObjectName(5, "withdraw_by_tag")
	c, err := e.store.Compose(context.Background(), dst, []byte("\uFEFFa,b\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, gen := e.object(t, dst)
	if string(got) != "\uFEFFa,b\n" || c != (output.Composed{Size: int64(len(got)), Generation: gen, Uploads: 1}) {
		t.Errorf("object %q, Composed %+v", got, c)
	}
	if n := e.gcs.count("compose"); n != 0 {
		t.Errorf("%d compose requests for no segments", n)
	}
}

// A report's object, once there, never changes: Compose finds it, sends
// no compose request, leaves its content and generation as they were,
// deletes the segments and reports ErrExists with the object's size and
// generation.
func TestComposeLeavesAnExistingObject(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	const id = 43
	dst := output.ObjectName(id, "withdraw_by_tag")
	first := "user_id,=tag,amount,note\n1,first,run,wins\n"
	if err := e.store.WriteNew(context.Background(), dst, func(w io.Writer) error { _, err := io.WriteString(w, first); return err }); err != nil {
		t.Fatal(err)
	}
	_, gen := e.object(t, dst)
	all := rows(1, 200)
	names := e.writeSegments(t, id, segFormat, all, evenCuts(200, 40))
	head, _ := segFormat.Head()
	e.gcs.reset()
	c, err := e.store.Compose(context.Background(), dst, head, names)
	if !errors.Is(err, output.ErrExists) {
		t.Fatalf("Compose over an existing object = %v, want ErrExists", err)
	}
	got, gotGen := e.object(t, dst)
	if string(got) != first || gotGen != gen {
		t.Errorf("object became %q generation %d, want %q generation %d", got, gotGen, first, gen)
	}
	if c.Size != int64(len(first)) || c.Generation != gen || c.Composes != 0 || c.Uploads != 0 {
		t.Errorf("Composed = %+v, want the existing object's size %d and generation %d, nothing composed or uploaded", c, len(first), gen)
	}
	if n := e.gcs.count("compose") + e.gcs.count("upload"); n != 0 {
		t.Errorf("%d compose or upload requests against an existing object", n)
	}
	if left := e.left(t, id); len(left) != 0 {
		t.Errorf("segments left: %v", left)
	}
}

// Compose interrupted for real at every kind of step (its context
// cancelled as a request leaves, or after the server did the work but
// before the answer arrived: a crash, a timeout) and run again, as a
// redelivery or a takeover would, ends with the single writer's file, the
// object untouched by the rerun if it was already there, and nothing left
// under the temporary prefix.
func TestComposeRerunAfterCrash(t *testing.T) {
	t.Parallel()
	const segments = 100 // head + 100: 3 intermediate composes, then the final one
	levelOne := output.ComposeRequests(segments) - 1
	tests := []struct {
		name      string
		kind      string
		n         int
		after     bool
		finalDone bool // the crash came after the final object existed
	}{
		{"head upload never sent", "upload", 1, false, false},
		{"head uploaded, answer lost", "upload", 1, true, false},
		{"first intermediate never sent", "compose", 1, false, false},
		{"an intermediate composed, answer lost", "compose", 2, true, false},
		{"final compose never sent", "compose", levelOne + 1, false, false},
		{"final compose done, answer lost", "compose", levelOne + 1, true, true},
		{"halfway through the deletes", "delete", segments / 2, false, true},
		{"last delete done, answer lost", "delete", segments + levelOne + 1, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newComposeEnv(t)
			const id = 44
			f := segFormat
			f.BOM = true
			all := rows(44, 1000)
			names := e.writeSegments(t, id, f, all, evenCuts(1000, segments))
			head, _ := f.Head()
			dst := output.ObjectName(id, "withdraw_by_tag_with_payments")

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.gcs.reset()
			e.gcs.crashAt(tt.kind, tt.n, tt.after, cancel)
			if _, err := e.store.Compose(ctx, dst, head, names); err == nil {
				t.Fatal("the interrupted Compose reported success")
			}
			_, err := e.srv.GetObject("reports", dst)
			if exists := err == nil; exists != tt.finalDone {
				t.Fatalf("after the crash the final object exists: %v, want %v", exists, tt.finalDone)
			}
			var genBefore int64
			if tt.finalDone {
				_, genBefore = e.object(t, dst)
			}

			c, err := e.store.Compose(context.Background(), dst, head, names)
			if tt.finalDone != errors.Is(err, output.ErrExists) || (err != nil && !errors.Is(err, output.ErrExists)) {
				t.Fatalf("rerun: %v (final object was there: %v)", err, tt.finalDone)
			}
			got, gen := e.object(t, dst)
			if want := single(t, f, all); !bytes.Equal(want, got) {
				t.Fatalf("object after the rerun differs from the single writer's at byte %d of %d/%d", firstDiff(want, got), len(want), len(got))
			}
			if tt.finalDone && (gen != genBefore || c.Composes != 0) {
				t.Errorf("the rerun changed the final object (generation %d -> %d, %d composes)", genBefore, gen, c.Composes)
			}
			if c.Generation != gen || c.Size != int64(len(got)) {
				t.Errorf("rerun's Composed %+v, object generation %d size %d", c, gen, len(got))
			}
			if left := e.left(t, id); len(left) != 0 {
				t.Errorf("left under the prefix: %d objects, first %s", len(left), left[0])
			}
		})
	}
}

// Two aggregators composing one report at once (a takeover while the
// first still runs) end with one object, the single writer's file, and
// nothing left; at least one of them reports success and the other
// success or ErrExists.
func TestComposeConcurrentRuns(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	const id, segments = 45, 100
	all := rows(45, 500)
	names := e.writeSegments(t, id, segFormat, all, evenCuts(500, segments))
	head, _ := segFormat.Head()
	dst := output.ObjectName(id, "withdraw_by_tag")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { _, errs[i] = e.store.Compose(context.Background(), dst, head, names) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, output.ErrExists):
			t.Errorf("concurrent Compose: %v", err)
		}
	}
	if won == 0 {
		t.Errorf("no run succeeded: %v", errs)
	}
	got, _ := e.object(t, dst)
	if want := single(t, segFormat, all); !bytes.Equal(want, got) {
		t.Fatalf("object differs from the single writer's at byte %d of %d/%d", firstDiff(want, got), len(want), len(got))
	}
	if left := e.left(t, id); len(left) != 0 {
		t.Errorf("left under the prefix: %d objects, first %s", len(left), left[0])
	}
}

// DeletePrefix removes a failed report's pieces, and only its own.
func TestDeletePrefix(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	ctx := context.Background()
	put := func(name string) {
		if err := e.store.Write(ctx, name, func(w io.Writer) error { _, err := io.WriteString(w, "1,x\n"); return err }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		put(output.SegmentName(46, i))
	}
	put(output.SegmentPrefix(46) + "compose-0-000000.csv")
	put(output.SegmentName(460, 0))
	put(output.ObjectName(46, "withdraw_by_tag"))
	n, err := e.store.DeletePrefix(ctx, output.SegmentPrefix(46))
	if err != nil || n != 6 {
		t.Errorf("DeletePrefix = %d, %v; want 6 deleted", n, err)
	}
	if left := e.left(t, 46); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	for _, keep := range []string{output.SegmentName(460, 0), output.ObjectName(46, "withdraw_by_tag")} {
		if _, err := e.srv.GetObject("reports", keep); err != nil {
			t.Errorf("%s, outside the prefix, was deleted", keep)
		}
	}
	if n, err := e.store.DeletePrefix(ctx, output.SegmentPrefix(46)); err != nil || n != 0 {
		t.Errorf("DeletePrefix again = %d, %v; want 0, nil", n, err)
	}
	if _, err := e.store.DeletePrefix(ctx, ""); err == nil {
		t.Error("DeletePrefix(\"\") would empty the bucket: no error")
	}
}

// A segment's rows read back without a header: an empty segment has none.
func TestCountSegmentRows(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	all := rows(47, 30)
	names := e.writeSegments(t, 47, segFormat, all, []int{0, 0, 30})
	for i, want := range []int64{0, 30} {
		if got, err := e.store.CountSegmentRows(context.Background(), names[i]); err != nil || got != want {
			t.Errorf("CountSegmentRows(%s) = %d, %v; want %d", names[i], got, err, want)
		}
	}
}
