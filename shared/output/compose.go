package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
)

// SegmentPrefix is the temporary prefix of every object of record id's
// parts: the segments, the head and the intermediate composites. Deleting
// it (DeletePrefix) removes all of a failed report's pieces.
func SegmentPrefix(id int64) string {
	return "tmp/reports/" + strconv.FormatInt(id, 10) + "/"
}

// SegmentName is where part (0-based, in key order) of record id's CSV
// lives until Compose assembles the report. Zero-padded so that the
// names sort in part order in a listing.
func SegmentName(id int64, part int) string {
	return fmt.Sprintf("%spart-%06d.csv", SegmentPrefix(id), part)
}

// MaxComposeSources is Cloud Storage's limit of source objects in one
// compose request; a composite may be a source of another compose.
const MaxComposeSources = 32

// Parallel requests one Compose sends at a time: the composes of one level
// of the tree and the deletes are independent of each other, and each is
// a round trip of tens of milliseconds to Cloud Storage, so they overlap.
// 32 composes are a whole level up to 1024 segments; with a 30 ms round
// trip, 1000 segments' 1033 deletes take about 1 s at 32 in flight
// (BenchmarkCompose, latency=30ms). Far under Cloud Storage's initial
// 1000 object writes a second per bucket.
const (
	composeParallel = MaxComposeSources
	deleteParallel  = 32
)

// Composed is the final object Compose left at dst, and what it cost.
type Composed struct {
	// Size and Generation are the final object's.
	Size       int64
	Generation int64
	// Uploads, Composes and Deletes count this call's requests that
	// succeeded (not the client's retries): the head upload, the compose
	// requests of the tree, the deletes of the temporary objects.
	Uploads, Composes, Deletes int
}

// Compose assembles the final object dst from head (the byte-order mark
// if any and the header line: Format.Head) followed by segments, in
// order, with Cloud Storage compose: at most MaxComposeSources sources a
// request, so past that a tree whose intermediate composites are written
// beside the first segment (SegmentPrefix). The head is uploaded there
// as one more small object, so it is in the result exactly once. The
// final compose is conditional on dst not existing (DoesNotExist): a
// report's object, once there, never changes. Then the head, the
// segments and the intermediates are deleted.
//
// Nothing is deleted before dst exists, and every temporary name is fixed
// by the segment names, so Compose is safe to run again after a crash at
// any step, and two runs may race: a run that finds dst already there
// (at the start, by the condition, or because a faster run deleted its
// sources) composes nothing more, deletes the temporary objects and
// returns dst's size and generation with an error wrapping ErrExists,
// as WriteNew does. An error from the deletes alone means dst is complete
// but pieces are left: a rerun finds dst and finishes the cleanup.
//
// With no segments the head alone is the object (WriteNew). The segments
// must all exist and be in dst's bucket.
func (s *Store) Compose(ctx context.Context, dst string, head []byte, segments []string) (Composed, error) {
	var c Composed
	if attrs, err := s.attrs(ctx, dst); err != nil {
		return c, err
	} else if attrs != nil {
		return s.composedBefore(ctx, attrs, segments, c)
	}
	if len(segments) == 0 {
		err := s.WriteNew(ctx, dst, func(w io.Writer) error { _, err := w.Write(head); return err })
		if err != nil && !errors.Is(err, ErrExists) {
			return c, err
		}
		attrs, aerr := s.attrs(ctx, dst)
		if aerr != nil {
			return c, aerr
		}
		if attrs == nil {
			return c, fmt.Errorf("storage attrs gs://%s/%s: missing right after its upload", s.bucket, dst)
		}
		if err == nil {
			c.Uploads++
		}
		c.Size, c.Generation = attrs.Size, attrs.Generation
		return c, err
	}

	tree := planCompose(segments)
	if err := s.Write(ctx, tree.head, func(w io.Writer) error { _, err := w.Write(head); return err }); err != nil {
		return c, err
	}
	c.Uploads++
	var composes atomic.Int32
	for _, level := range tree.levels {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(composeParallel)
		for _, st := range level {
			g.Go(func() error {
				if _, err := s.compose(gctx, st.dst, st.srcs, false); err != nil {
					return err
				}
				composes.Add(1)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			c.Composes = int(composes.Load())
			return s.composeFailed(ctx, dst, tree, c, err)
		}
	}
	attrs, err := s.compose(ctx, dst, tree.final, true)
	c.Composes = int(composes.Load())
	if err != nil {
		return s.composeFailed(ctx, dst, tree, c, err)
	}
	c.Composes++
	c.Size, c.Generation = attrs.Size, attrs.Generation
	n, err := s.deleteAll(ctx, tree.temporary())
	c.Deletes = n
	return c, err
}

// composedBefore is Compose finding dst already there: the report was
// assembled by an earlier or a concurrent run. Only the cleanup is left.
func (s *Store) composedBefore(ctx context.Context, attrs *storage.ObjectAttrs, segments []string, c Composed) (Composed, error) {
	c.Size, c.Generation = attrs.Size, attrs.Generation
	var temp []string
	if len(segments) > 0 {
		temp = planCompose(segments).temporary()
	}
	n, err := s.deleteAll(ctx, temp)
	c.Deletes += n
	if err != nil {
		return c, err
	}
	return c, fmt.Errorf("storage compose gs://%s/%s: %w", s.bucket, attrs.Name, ErrExists)
}

// composeFailed decides what a failed compose means: if dst exists,
// another run finished first (and may have deleted this run's sources);
// otherwise it is the error.
func (s *Store) composeFailed(ctx context.Context, dst string, tree composeTree, c Composed, err error) (Composed, error) {
	attrs, aerr := s.attrs(ctx, dst)
	if aerr != nil {
		return c, errors.Join(err, aerr)
	}
	if attrs == nil {
		return c, err
	}
	return s.composedBefore(ctx, attrs, tree.segments, c)
}

// compose runs one compose request of srcs into dst, conditional on dst
// not existing if onlyNew (a refusal is ErrExists).
func (s *Store) compose(ctx context.Context, dst string, srcs []string, onlyNew bool) (*storage.ObjectAttrs, error) {
	b := s.client.Bucket(s.bucket)
	handles := make([]*storage.ObjectHandle, len(srcs))
	for i, n := range srcs {
		handles[i] = b.Object(n)
	}
	obj := b.Object(dst).Retryer(s.retryOptions()...)
	if onlyNew {
		obj = obj.If(storage.Conditions{DoesNotExist: true})
	}
	c := obj.ComposerFrom(handles...)
	c.ContentType = "text/csv"
	attrs, err := c.Run(ctx)
	if err != nil {
		var gerr *googleapi.Error
		if onlyNew && errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed {
			return nil, fmt.Errorf("storage compose gs://%s/%s: %w", s.bucket, dst, ErrExists)
		}
		return nil, fmt.Errorf("storage compose gs://%s/%s from %d sources (%s … %s): %w", s.bucket, dst, len(srcs), srcs[0], srcs[len(srcs)-1], err)
	}
	return attrs, nil
}

// retryOptions retry every request of a compose: each one is safe to
// repeat (fixed names, fixed content, the final one conditional), and
// MaxAttempts bounds them so that an outage fails the request and
// Pub/Sub's backoff, not a spinning client, retries it.
func (s *Store) retryOptions() []storage.RetryOption {
	return []storage.RetryOption{
		storage.WithPolicy(storage.RetryAlways),
		storage.WithBackoff(gax.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}),
		storage.WithMaxAttempts(MaxAttempts),
	}
}

// attrs is object's attributes, nil if there is no such object.
func (s *Store) attrs(ctx context.Context, object string) (*storage.ObjectAttrs, error) {
	attrs, err := s.client.Bucket(s.bucket).Object(object).Retryer(s.retryOptions()...).Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage attrs gs://%s/%s: %w", s.bucket, object, err)
	}
	return attrs, nil
}

// deleteAll deletes objects, an already missing one counting as deleted
// (a rerun, or a concurrent run cleaning up too), and returns how many
// deletes succeeded.
func (s *Store) deleteAll(ctx context.Context, objects []string) (int, error) {
	var n atomic.Int32
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteParallel)
	for _, o := range objects {
		g.Go(func() error {
			err := s.client.Bucket(s.bucket).Object(o).Retryer(s.retryOptions()...).Delete(gctx)
			if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
				return fmt.Errorf("storage delete gs://%s/%s: %w", s.bucket, o, err)
			}
			if err == nil {
				n.Add(1)
			}
			return nil
		})
	}
	err := g.Wait()
	return int(n.Load()), err
}

// DeletePrefix deletes every object whose name starts with prefix (a
// failed report's segments: SegmentPrefix) and returns how many it
// deleted. Objects that vanish meanwhile are not an error.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("storage delete by prefix: empty prefix would empty the bucket")
	}
	var names []string
	it := s.client.Bucket(s.bucket).Retryer(s.retryOptions()...).Objects(ctx, &storage.Query{Prefix: prefix})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("storage list gs://%s/%s*: %w", s.bucket, prefix, err)
		}
		names = append(names, attrs.Name)
	}
	return s.deleteAll(ctx, names)
}

// composeStep is one compose request: srcs, in order, into dst.
type composeStep struct {
	dst  string
	srcs []string
}

// composeTree is the plan of one Compose: the head object, the levels of
// intermediate composes (each level's steps independent of each other,
// each level reading only what earlier levels wrote), and the sources of
// the final compose. Every name follows from the segment names alone, so
// a rerun writes, and deletes, the same names.
type composeTree struct {
	segments []string
	head     string
	levels   [][]composeStep
	final    []string
}

// planCompose plans the tree for head + segments with the fewest compose
// requests: each request of k sources takes k-1 names off the list, so
// n sources need at least ceil((n-1)/31) requests, and every request here
// but the last intermediate one composes 32. A level composes only as
// many groups as it must to leave at most 32 names for the final compose.
func planCompose(segments []string) composeTree {
	dir := path.Dir(segments[0]) + "/"
	t := composeTree{segments: segments, head: dir + "head.csv"}
	cur := append([]string{t.head}, segments...)
	for level := 0; len(cur) > MaxComposeSources; level++ {
		var steps []composeStep
		var next []string
		// excess is how many names this level takes off the list. Past
		// 32×32 names one level cannot reach 32: it composes full groups
		// only (a partial group would cost a request that takes fewer than
		// 31 names off) and passes the rest on.
		excess := len(cur) - MaxComposeSources
		full := len(cur) > MaxComposeSources*MaxComposeSources
		i := 0
		for excess > 0 {
			k := min(MaxComposeSources, excess+1)
			if full && len(cur)-i < MaxComposeSources {
				break
			}
			name := fmt.Sprintf("%scompose-%d-%06d.csv", dir, level, len(steps))
			steps = append(steps, composeStep{dst: name, srcs: cur[i : i+k]})
			next = append(next, name)
			i += k
			excess -= k - 1
		}
		next = append(next, cur[i:]...)
		t.levels = append(t.levels, steps)
		cur = next
	}
	t.final = cur
	return t
}

// temporary is every object the tree reads or writes except dst: what is
// deleted once dst exists.
func (t composeTree) temporary() []string {
	names := append([]string{t.head}, t.segments...)
	for _, l := range t.levels {
		for _, st := range l {
			names = append(names, st.dst)
		}
	}
	return names
}

// ComposeRequests is the number of compose requests that assemble a head
// and that many segments: what Compose sends when nothing fails.
func ComposeRequests(segments int) int {
	if segments == 0 {
		return 0
	}
	names := make([]string, segments)
	for i := range names {
		names[i] = "x/" + strconv.Itoa(i)
	}
	t := planCompose(names)
	n := 1
	for _, l := range t.levels {
		n += len(l)
	}
	return n
}
