package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/local/stack"
)

// fnProc is one process of the stack: a function server or DrainTriggers.
type fnProc struct {
	PID  int
	Name string // FUNCTION_TARGET, or the executable's name
}

// sharedServers are the servers the pipeline uses that run outside the
// stack, by their processes' command names (/proc/<pid>/comm). They are
// shared with everything else on this machine, so their CPU seconds
// during a report include other clients' work.
var sharedServers = map[string]string{
	"mariadbd":     "MariaDB (shared)",
	"mysqld":       "MariaDB (shared)",
	"redis-server": "Redis (shared)",
	"beam.smp":     "RabbitMQ (shared)",
}

// serverProcs finds the shared servers' processes under procDir
// ("/proc"). A second process of the same server is named with its PID.
func serverProcs(procDir string) []fnProc {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil
	}
	var out []fnProc
	seen := map[string]bool{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(procDir + "/" + e.Name() + "/comm")
		if err != nil {
			continue
		}
		name, ok := sharedServers[strings.TrimSpace(string(comm))]
		if !ok {
			continue
		}
		if seen[name] {
			name = fmt.Sprintf("%s pid %d", name, pid)
		}
		seen[name] = true
		out = append(out, fnProc{PID: pid, Name: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// loadAvg reads the 1-, 5- and 15-minute load averages.
func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

// userHZ is the unit of utime/stime in /proc/<pid>/stat on Linux.
const userHZ = 100

// statFields returns the fields of /proc/<pid>/stat after the command
// name: [0] state, [1] ppid, ..., [11] utime, [12] stime.
func statFields(pid string) ([]string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%s/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// stackProcs names the stack's running processes (each function server
// and DrainTriggers, each its own executable) and their process IDs.
func stackProcs(st *stack.Stack) ([]fnProc, error) {
	var out []fnProc
	for _, name := range st.Processes() {
		pid := st.PID(name)
		if pid == 0 {
			return nil, fmt.Errorf("process %s is not running", name)
		}
		out = append(out, fnProc{PID: pid, Name: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// memKB reads VmRSS and VmHWM of pid ("self" for this process).
func memKB(pid string) (rss, hwm int64, err error) {
	rss, hwm, _, err = memKBAnon(pid)
	return rss, hwm, err
}

// memKBAnon is memKB with RssAnon: the resident memory that is the
// process's own (heap, stacks), without the executable's mapped pages
// (RssFile: 33 MiB of an idle function's 41 MiB here, the same for every
// report).
func memKBAnon(pid string) (rss, hwm, anon int64, err error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		case strings.HasPrefix(line, "RssAnon:"):
			dst = &anon
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			*dst, _ = strconv.ParseInt(fs[1], 10, 64)
		}
	}
	return rss, hwm, anon, sc.Err()
}

// resetHWM sets VmHWM back to the current RSS (Linux ≥ 4.0), so each
// report's peak is its own.
func resetHWM(pid string) error {
	return os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0)
}

// cpuTicks is utime+stime of pid.
func cpuTicks(pid string) int64 {
	f, err := statFields(pid)
	if err != nil || len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// ProcMem is one process's memory and CPU during one report.
type ProcMem struct {
	PeakMiB    float64 `json:"peakRssMiB"`       // VmHWM at the end (reset before)
	SampledMiB float64 `json:"sampledMaxRssMiB"` // max VmRSS seen every 50 ms
	// AnonMiB is the max RssAnon seen every 50 ms: the process's own
	// memory, what grows with its work (VmRSS less the executable's pages).
	AnonMiB float64 `json:"sampledMaxRssAnonMiB"`
	CPUSec  float64 `json:"cpuSec"`
}

// sampler watches the stack's processes, this process and Redis while one
// report runs.
type sampler struct {
	procs   []fnProc
	servers []fnProc // shared servers: CPU only (their peak memory is not ours to reset)
	rdb     *redis.Client

	mu        sync.Mutex
	key       string // the report's hash, once its record ID is known
	maxRSS    map[string]int64
	maxAnon   map[string]int64
	cpu0      map[string]int64
	redisBase int64
	redisMax  int64
	hashMax   int64
	samples   int
	// hashByteSec integrates the report hash's size over time: what the
	// report holds in Redis, for how long.
	hashByteSec float64
	last        time.Time
}

func pidKey(p fnProc) string { return strconv.Itoa(p.PID) }

func newSampler(ctx context.Context, procs, servers []fnProc, rdb *redis.Client) *sampler {
	s := &sampler{procs: procs, servers: servers, rdb: rdb, maxRSS: map[string]int64{}, maxAnon: map[string]int64{}, cpu0: map[string]int64{}}
	for _, p := range servers {
		s.cpu0[pidKey(p)] = cpuTicks(pidKey(p))
	}
	for _, p := range append(append([]fnProc{}, procs...), fnProc{Name: selfName}) {
		pid := pidKey(p)
		if p.Name == selfName {
			pid = "self"
		}
		_ = resetHWM(pid)
		s.cpu0[pid] = cpuTicks(pid)
	}
	s.redisBase = usedMemory(ctx, rdb)
	s.redisMax = s.redisBase
	return s
}

// selfName names this process (the push relay, pstest and fake-gcs-server
// run inside it) in the tables.
const selfName = "bench (relay+pstest+fake-gcs)"

func (s *sampler) setKey(k string) {
	s.mu.Lock()
	s.key = k
	s.mu.Unlock()
}

func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func (s *sampler) sample(ctx context.Context) {
	pids := []string{"self"}
	for _, p := range s.procs {
		pids = append(pids, pidKey(p))
	}
	for _, pid := range pids {
		if rss, _, anon, err := memKBAnon(pid); err == nil {
			s.mu.Lock()
			s.maxRSS[pid] = max(s.maxRSS[pid], rss)
			s.maxAnon[pid] = max(s.maxAnon[pid], anon)
			s.mu.Unlock()
		}
	}
	used := usedMemory(ctx, s.rdb)
	s.mu.Lock()
	key := s.key
	s.mu.Unlock()
	var hash int64
	if key != "" {
		hash, _ = s.rdb.MemoryUsage(ctx, key, 0).Result()
	}
	now := time.Now()
	s.mu.Lock()
	s.redisMax = max(s.redisMax, used)
	s.hashMax = max(s.hashMax, hash)
	s.samples++
	if !s.last.IsZero() {
		s.hashByteSec += float64(hash) * now.Sub(s.last).Seconds()
	}
	s.last = now
	s.mu.Unlock()
}

// run samples every interval until ctx ends.
func (s *sampler) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serverCPU is each shared server's CPU seconds since the sampler started.
func (s *sampler) serverCPU() map[string]float64 {
	out := map[string]float64{}
	for _, p := range s.servers {
		out[p.Name] = float64(cpuTicks(pidKey(p))-s.cpu0[pidKey(p)]) / userHZ
	}
	return out
}

// finish reads every process's VmHWM and CPU time.
func (s *sampler) finish() map[string]ProcMem {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]ProcMem{}
	for _, p := range append(append([]fnProc{}, s.procs...), fnProc{Name: selfName}) {
		pid := pidKey(p)
		if p.Name == selfName {
			pid = "self"
		}
		_, hwm, err := memKB(pid)
		if err != nil {
			continue
		}
		out[p.Name] = ProcMem{
			PeakMiB:    float64(hwm) / 1024,
			SampledMiB: float64(s.maxRSS[pid]) / 1024,
			AnonMiB:    float64(s.maxAnon[pid]) / 1024,
			CPUSec:     float64(cpuTicks(pid)-s.cpu0[pid]) / userHZ,
		}
	}
	return out
}
