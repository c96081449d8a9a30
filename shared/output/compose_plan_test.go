package output

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The compose tree, run on strings instead of objects: every request has
// 2 to 32 sources that exist when it runs (a level reads only the head,
// segments and earlier levels' composites), the result is head + segments
// in order, each exactly once, and the number of requests is the least
// possible, ceil(segments/31) (each request of k sources takes k-1 names
// off the list of segments + 1).
func TestPlanCompose(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3, 30, 31, 32, 33, 34, 62, 63, 64, 100, 992, 993, 1023, 1024, 1025, 1100, 2000, 33000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			segs := make([]string, n)
			want := []string{"H"}
			for i := range segs {
				segs[i] = SegmentName(7, i)
				want = append(want, fmt.Sprint(i))
			}
			tree := planCompose(segs)
			content := map[string][]string{tree.head: {"H"}}
			for i, s := range segs {
				content[s] = []string{fmt.Sprint(i)}
			}
			requests := 0
			run := func(dst string, srcs []string) {
				requests++
				if len(srcs) < 2 || len(srcs) > MaxComposeSources {
					t.Errorf("compose into %s with %d sources", dst, len(srcs))
				}
				var out []string
				for _, s := range srcs {
					c, ok := content[s]
					if !ok {
						t.Fatalf("compose into %s reads %s before it exists", dst, s)
					}
					out = append(out, c...)
				}
				if _, ok := content[dst]; ok {
					t.Errorf("compose into %s overwrites a source of the tree", dst)
				}
				content[dst] = out
			}
			for _, level := range tree.levels {
				// A level's steps run concurrently: none may read another's output.
				written := map[string]bool{}
				for _, st := range level {
					written[st.dst] = true
				}
				for _, st := range level {
					for _, s := range st.srcs {
						if written[s] {
							t.Errorf("%s reads %s, written in the same level", st.dst, s)
						}
					}
				}
				for _, st := range level {
					if !strings.HasPrefix(st.dst, SegmentPrefix(7)) {
						t.Errorf("intermediate %s is outside the record's temporary prefix", st.dst)
					}
					run(st.dst, st.srcs)
				}
			}
			run("final", tree.final)
			if diff := cmp.Diff(want, content["final"]); diff != "" {
				t.Errorf("composed (-want +got):\n%s", diff)
			}
			if least := (n + 30) / 31; requests != least || ComposeRequests(n) != least {
				t.Errorf("%d requests (ComposeRequests %d), want the least possible, %d", requests, ComposeRequests(n), least)
			}
			// temporary is everything but the final object, each name once.
			temp := tree.temporary()
			seen := map[string]bool{}
			for _, name := range temp {
				if seen[name] {
					t.Errorf("%s twice in the cleanup list", name)
				}
				seen[name] = true
			}
			if len(temp) != len(content)-1 {
				t.Errorf("cleanup deletes %d objects, the tree has %d besides the final one", len(temp), len(content)-1)
			}
		})
	}
	for n := 1; n <= 1100; n++ {
		if got, least := ComposeRequests(n), (n+30)/31; got != least {
			t.Errorf("ComposeRequests(%d) = %d, want the least possible, %d", n, got, least)
		}
	}
	if ComposeRequests(0) != 0 {
		t.Errorf("ComposeRequests(0) = %d, want 0 (the head is uploaded as the object)", ComposeRequests(0))
	}
}
