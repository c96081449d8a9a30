package bench

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// GCSOps counts Cloud Storage requests by what they cost: uploads and
// composes (class A), lists (class A), reads of objects or their metadata
// (class B), deletes (free). A resumable upload's later requests (one per
// chunk of the client's buffer) are counted apart, and billed as class A
// too: the conservative reading of the price page.
type GCSOps struct {
	Uploads     int64 `json:"uploads"`
	UploadParts int64 `json:"uploadParts"`
	Composes    int64 `json:"composes"`
	Deletes     int64 `json:"deletes"`
	Lists       int64 `json:"lists"`
	Reads       int64 `json:"reads"`
	Other       int64 `json:"other"` // anything else (copies, patches): billed as class A
}

// ClassA is the operations billed as class A.
func (o GCSOps) ClassA() int64 { return o.Uploads + o.UploadParts + o.Composes + o.Lists + o.Other }

// ClassB is the operations billed as class B.
func (o GCSOps) ClassB() int64 { return o.Reads }

// sub is o minus p, field by field.
func (o GCSOps) sub(p GCSOps) GCSOps {
	return GCSOps{o.Uploads - p.Uploads, o.UploadParts - p.UploadParts, o.Composes - p.Composes, o.Deletes - p.Deletes, o.Lists - p.Lists, o.Reads - p.Reads, o.Other - p.Other}
}

// classifyGCS names the operation of one JSON API request, as the Go
// client and fake-gcs-server speak it. A resumable upload's requests after
// the first (they carry its upload_id) are parts of the upload it started.
func classifyGCS(method, path string, query url.Values) string {
	switch {
	case strings.HasPrefix(path, "/upload/storage/v1/b/") && query.Has("upload_id"):
		return "upload part"
	case method == http.MethodPost && strings.HasPrefix(path, "/upload/storage/v1/b/"):
		return "upload"
	case method == http.MethodPost && strings.HasSuffix(path, "/compose"):
		return "compose"
	case method == http.MethodDelete:
		return "delete"
	case method == http.MethodGet && strings.HasPrefix(path, "/storage/v1/b/") && strings.HasSuffix(path, "/o"):
		return "list"
	case method == http.MethodGet || method == http.MethodHead:
		return "read"
	}
	return "other"
}

// gcsCounter is a reverse proxy in front of the Cloud Storage emulator
// that counts what passes through it. The functions reach the emulator
// through it (STORAGE_EMULATOR_HOST), so every operation they make is
// counted; the emulator's address is set once the stack has started it.
type gcsCounter struct {
	target atomic.Pointer[url.URL]
	srv    *http.Server
	ln     net.Listener

	mu  sync.Mutex
	ops GCSOps
}

// startGCSCounter listens on a free local port; Host is its host:port.
func startGCSCounter() (*gcsCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the Cloud Storage counter: %w", err)
	}
	c := &gcsCounter{ln: ln}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			if t := c.target.Load(); t != nil {
				r.SetURL(t)
				r.Out.Host = r.In.Host // the emulator answers with URLs on the host it was asked
			}
		},
	}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.target.Load() == nil {
			http.Error(w, "Cloud Storage emulator not started yet", http.StatusServiceUnavailable)
			return
		}
		c.count(classifyGCS(r.Method, r.URL.Path, r.URL.Query()))
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// Host is the counter's host:port.
func (c *gcsCounter) Host() string { return c.ln.Addr().String() }

// setTarget points the counter at the emulator (its http://host:port).
func (c *gcsCounter) setTarget(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("the Cloud Storage emulator's URL %q: %w", raw, err)
	}
	c.target.Store(u)
	return nil
}

func (c *gcsCounter) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch op {
	case "upload":
		c.ops.Uploads++
	case "upload part":
		c.ops.UploadParts++
	case "compose":
		c.ops.Composes++
	case "delete":
		c.ops.Deletes++
	case "list":
		c.ops.Lists++
	case "read":
		c.ops.Reads++
	default:
		c.ops.Other++
	}
}

// snapshot returns the counts so far.
func (c *gcsCounter) snapshot() GCSOps {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops
}

func (c *gcsCounter) Close() error { return c.srv.Close() }
