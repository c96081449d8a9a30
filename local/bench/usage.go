package bench

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/fanoutexport/fanoutexport/local/relay"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// billingQuantum is Cloud Run's billing granularity: each request's time
// is rounded up to the next 100 ms (instances serving one request at a
// time, as every function here does).
const billingQuantum = 100 * time.Millisecond

// pubsubMinBytes is Pub/Sub's minimum billable size of a publish or push
// request: a message smaller than 1000 bytes is billed as 1000.
const pubsubMinBytes = 1000

// FnUsage is one function's deliveries for one report, as the relay
// pushed them: what Cloud Run bills (requests and request time) and the
// longest single delivery (Pub/Sub push gives up on one after 600 s).
type FnUsage struct {
	Requests    int     `json:"requests"`
	Failed      int     `json:"failed"` // not acked: redelivered or dead-lettered
	Seconds     float64 `json:"seconds"`
	BilledSec   float64 `json:"billedSeconds"` // each request rounded up to 100 ms (see atSize)
	LongestSec  float64 `json:"longestDeliverySec"`
	VCPUSeconds float64 `json:"vcpuSeconds"` // billed seconds x the configured vCPU
	GiBSeconds  float64 `json:"gibSeconds"`  // billed seconds x the configured memory
	// CPUSec is the function's process's CPU seconds here (atSize).
	CPUSec float64 `json:"cpuSec"`
	// MaxConcurrent is the most deliveries its one local process served
	// at once: its peak RSS holds that many (in production each is its
	// own instance, request concurrency 1).
	MaxConcurrent int `json:"maxConcurrentDeliveries"`
}

// atSize corrects the billed seconds for the instance's size: here a
// function's process may use a whole core, at its configured size (a
// fraction of a vCPU when cpu is unset) the same CPU work takes at least
// CPU seconds / vCPU. Billed seconds become the larger of the two, and
// vCPU- and GiB-seconds follow; cpu holds each function's CPU seconds.
func atSize(fns map[string]FnUsage, cpu map[string]float64, sizes map[string]Size) map[string]FnUsage {
	out := map[string]FnUsage{}
	for fn, u := range fns {
		s := sizes[fn]
		u.CPUSec = cpu[fn]
		if s.VCPU > 0 {
			u.BilledSec = max(u.BilledSec, u.CPUSec/s.VCPU)
		}
		u.VCPUSeconds, u.GiBSeconds = u.BilledSec*s.VCPU, u.BilledSec*s.GiB
		out[fn] = u
	}
	return out
}

// maxConcurrent is, per function, the most deliveries in flight at once.
func maxConcurrent(ds []relay.Delivery, name func(sub string) string) map[string]int {
	type edge struct {
		t     time.Time
		delta int
	}
	by := map[string][]edge{}
	for _, x := range ds {
		fn := name(x.Subscription)
		by[fn] = append(by[fn], edge{x.Start, 1}, edge{x.End, -1})
	}
	out := map[string]int{}
	for fn, es := range by {
		sort.Slice(es, func(i, j int) bool {
			if es[i].t.Equal(es[j].t) {
				return es[i].delta < es[j].delta
			}
			return es[i].t.Before(es[j].t)
		})
		n, m := 0, 0
		for _, e := range es {
			n += e.delta
			m = max(m, n)
		}
		out[fn] = m
	}
	return out
}

// PubSubUsage is a report's Pub/Sub traffic: every message published
// with its recordId and every push of one.
type PubSubUsage struct {
	Messages   int   `json:"messages"`
	Bytes      int64 `json:"bytes"` // data + attributes + ordering key, as published
	Deliveries int   `json:"deliveries"`
	// BillableBytes counts each publish and each delivery at its size or
	// 1000 bytes, whichever is more (a message no subscriber pushed is
	// counted as delivered once: pulled by DrainTriggers or a hold subscription).
	BillableBytes int64 `json:"billableBytes"`
}

// deliveries keeps every push the relay made, by record (its recordId
// attribute); the stack calls observe on the relay's goroutines.
type deliveries struct {
	fnOf map[string]string // subscription -> entry point

	mu    sync.Mutex
	byRec map[int64][]relay.Delivery
}

func newDeliveries() *deliveries {
	d := &deliveries{fnOf: map[string]string{}, byRec: map[int64][]relay.Delivery{}}
	for _, f := range topology.Functions() {
		if f.Kind == topology.KindPush {
			d.fnOf[f.Subscription] = f.EntryPoint
		}
	}
	return d
}

func (d *deliveries) observe(x relay.Delivery) {
	id, err := strconv.ParseInt(x.Attributes[message.AttrRecordID], 10, 64)
	if err != nil {
		return
	}
	d.mu.Lock()
	d.byRec[id] = append(d.byRec[id], x)
	d.mu.Unlock()
}

// of returns the pushes of record id so far.
func (d *deliveries) of(id int64) []relay.Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]relay.Delivery(nil), d.byRec[id]...)
}

// functionName is the entry point of a subscription; a prefixed name
// (PUBSUB_NAME_PREFIX) ends with the unprefixed one.
func (d *deliveries) functionName(sub string) string {
	if ep, ok := d.fnOf[sub]; ok {
		return ep
	}
	for s, ep := range d.fnOf {
		if strings.HasSuffix(sub, "-"+s) {
			return ep
		}
	}
	return sub
}

// fnUsage sums pushes by function, billing each at the function's size
// (a function without a size is billed nothing but still counted).
func fnUsage(ds []relay.Delivery, name func(sub string) string, sizes map[string]Size) map[string]FnUsage {
	out := map[string]FnUsage{}
	for _, x := range ds {
		fn := name(x.Subscription)
		u := out[fn]
		sec := x.End.Sub(x.Start).Seconds()
		billed := math.Ceil(sec/billingQuantum.Seconds()) * billingQuantum.Seconds()
		u.Requests++
		if !x.Acked {
			u.Failed++
		}
		u.Seconds += sec
		u.BilledSec += billed
		u.LongestSec = max(u.LongestSec, sec)
		s := sizes[fn]
		u.VCPUSeconds += billed * s.VCPU
		u.GiBSeconds += billed * s.GiB
		out[fn] = u
	}
	for fn, n := range maxConcurrent(ds, name) {
		u := out[fn]
		u.MaxConcurrent = n
		out[fn] = u
	}
	return out
}

// longest is the function with the longest single delivery.
func longest(fns map[string]FnUsage) (string, float64) {
	names := make([]string, 0, len(fns))
	for n := range fns {
		names = append(names, n)
	}
	sort.Strings(names)
	best, sec := "", 0.0
	for _, n := range names {
		if fns[n].LongestSec > sec {
			best, sec = n, fns[n].LongestSec
		}
	}
	return best, sec
}

// msgSize is a message's size as Pub/Sub counts it for throughput:
// data, attribute keys and values, ordering key.
func msgSize(m *pstest.Message) int64 {
	n := int64(len(m.Data) + len(m.OrderingKey))
	for k, v := range m.Attributes {
		n += int64(len(k) + len(v))
	}
	return n
}

// pubsubUsage sums the messages of record id among msgs (the emulator
// keeps every message published) and their pushes.
func pubsubUsage(msgs []*pstest.Message, id int64, pushes []relay.Delivery) PubSubUsage {
	want := strconv.FormatInt(id, 10)
	posts := map[string]int{}
	for _, x := range pushes {
		posts[x.MessageID]++
	}
	var u PubSubUsage
	for _, m := range msgs {
		if m.Attributes[message.AttrRecordID] != want {
			continue
		}
		size := msgSize(m)
		billed := max(size, pubsubMinBytes)
		n := max(posts[m.ID], 1)
		u.Messages++
		u.Bytes += size
		u.Deliveries += posts[m.ID]
		u.BillableBytes += billed * int64(1+n)
	}
	return u
}
