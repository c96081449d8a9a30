package bench

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// pricesJSON is the one list of prices the cost model uses, with its
// source and date (prices.json; the README shows what it gives).
//
//go:embed prices.json
var pricesJSON []byte

// Prices are list prices in US dollars (prices.json).
type Prices struct {
	Source   string `json:"source"`
	AsOf     string `json:"asOf"`
	Check    string `json:"check"`
	CloudRun struct {
		Note              string  `json:"note"`
		VCPUSecond        float64 `json:"vcpuSecond"`
		GiBSecond         float64 `json:"gibSecond"`
		PerMillionRequest float64 `json:"perMillionRequests"`
		IdleVCPUSecond    float64 `json:"idleMinInstanceVcpuSecond"`
		IdleGiBSecond     float64 `json:"idleMinInstanceGibSecond"`
	} `json:"cloudRun"`
	PubSub struct {
		Note               string  `json:"note"`
		PerTiB             float64 `json:"perTiB"`
		MinBytesPerMessage int64   `json:"minBytesPerMessage"`
	} `json:"pubsub"`
	Memorystore struct {
		Note           string             `json:"note"`
		BasicGBHour    map[string]float64 `json:"basicGbHour"`
		StandardGBHour map[string]float64 `json:"standardGbHour"`
	} `json:"memorystore"`
	Storage struct {
		Note          string  `json:"note"`
		GBMonth       float64 `json:"gbMonth"`
		ClassAPer1000 float64 `json:"classAPer1000"`
		ClassBPer1000 float64 `json:"classBPer1000"`
	} `json:"storage"`
	Scheduler struct {
		Note     string  `json:"note"`
		JobMonth float64 `json:"jobMonth"`
	} `json:"scheduler"`
}

// LoadPrices reads the embedded price list and checks that every price
// is there.
func LoadPrices() (Prices, error) { return parsePrices(pricesJSON) }

func parsePrices(b []byte) (Prices, error) {
	var p Prices
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("prices.json: %w", err)
	}
	var errs []error
	need := func(name string, v float64) {
		if !(v > 0) {
			errs = append(errs, fmt.Errorf("prices.json: %s missing or not positive", name))
		}
	}
	need("cloudRun.vcpuSecond", p.CloudRun.VCPUSecond)
	need("cloudRun.gibSecond", p.CloudRun.GiBSecond)
	need("cloudRun.perMillionRequests", p.CloudRun.PerMillionRequest)
	need("cloudRun.idleMinInstanceVcpuSecond", p.CloudRun.IdleVCPUSecond)
	need("cloudRun.idleMinInstanceGibSecond", p.CloudRun.IdleGiBSecond)
	need("pubsub.perTiB", p.PubSub.PerTiB)
	need("pubsub.minBytesPerMessage", float64(p.PubSub.MinBytesPerMessage))
	need("storage.gbMonth", p.Storage.GBMonth)
	need("storage.classAPer1000", p.Storage.ClassAPer1000)
	need("storage.classBPer1000", p.Storage.ClassBPer1000)
	need("scheduler.jobMonth", p.Scheduler.JobMonth)
	for _, tier := range []string{"M1", "M2", "M3", "M4", "M5"} {
		need("memorystore.basicGbHour."+tier, p.Memorystore.BasicGBHour[tier])
		need("memorystore.standardGbHour."+tier, p.Memorystore.StandardGBHour[tier])
	}
	if p.Source == "" || p.AsOf == "" {
		errs = append(errs, errors.New("prices.json: source and asOf are required"))
	}
	return p, errors.Join(errs...)
}

// ReportCost is what one report costs, by service, in dollars.
type ReportCost struct {
	FunctionsUSD float64 `json:"functionsUsd"` // vCPU-s, GiB-s and requests of every push
	PubSubUSD    float64 `json:"pubsubUsd"`
	StorageUSD   float64 `json:"storageOpsUsd"` // class A and B operations
	TotalUSD     float64 `json:"totalUsd"`
}

// Report prices one report's measured usage.
func (p Prices) Report(fns map[string]FnUsage, ps PubSubUsage, ops GCSOps) ReportCost {
	var c ReportCost
	for _, u := range fns {
		c.FunctionsUSD += u.VCPUSeconds*p.CloudRun.VCPUSecond + u.GiBSeconds*p.CloudRun.GiBSecond +
			float64(u.Requests)*p.CloudRun.PerMillionRequest/1e6
	}
	c.PubSubUSD = float64(ps.BillableBytes) / (1 << 40) * p.PubSub.PerTiB
	c.StorageUSD = float64(ops.ClassA())*p.Storage.ClassAPer1000/1000 + float64(ops.ClassB())*p.Storage.ClassBPer1000/1000
	c.TotalUSD = c.FunctionsUSD + c.PubSubUSD + c.StorageUSD
	return c
}

// Workload is the monthly load the monthly figure is for.
type Workload struct {
	SmallPerDay int     `json:"smallPerDay"`
	BigPerDay   int     `json:"bigPerDay"`
	Days        float64 `json:"daysPerMonth"`
	// DrainBusySecPerMin is how long DrainTriggers' scheduled drain runs of
	// every minute (it keeps draining RabbitMQ until just before the next
	// run).
	DrainBusySecPerMin float64 `json:"drainBusySecPerMinute"`
	// SweepSecPerRun is one run of the sweeper, billed at its size.
	SweepSecPerRun float64 `json:"sweepSecPerRun"`
}

// DefaultWorkload is the workload of the README's table: 5,000 small and
// 20 big reports a day.
var DefaultWorkload = Workload{SmallPerDay: 5000, BigPerDay: 20, Days: 30, DrainBusySecPerMin: 50, SweepSecPerRun: 1}

// hoursPerMonth is the month Google's price pages use.
const hoursPerMonth = 730

// CostLine is one row of the monthly table.
type CostLine struct {
	Item  string  `json:"item"`
	Basis string  `json:"basis"`
	USD   float64 `json:"usd"`
	Fixed bool    `json:"fixed"` // paid by an idle deployment too
}

// Monthly is the monthly figure of a workload: its lines, and the
// alternatives shown beside it (not in the total).
type Monthly struct {
	Workload     Workload   `json:"workload"`
	Lines        []CostLine `json:"lines"`
	FixedUSD     float64    `json:"fixedUsd"`
	TotalUSD     float64    `json:"totalUsd"`
	Alternatives []CostLine `json:"alternatives"`
}

// PerReport is one kind of report's measured cost and output, the input
// of Monthly.
type PerReport struct {
	Cost     ReportCost `json:"cost"`
	CSVBytes int64      `json:"csvBytes"`
}

// redisTier is Memorystore's capacity tier of an instance of gb GB.
func redisTier(gb int) string {
	switch {
	case gb <= 4:
		return "M1"
	case gb <= 10:
		return "M2"
	case gb <= 35:
		return "M3"
	case gb <= 100:
		return "M4"
	}
	return "M5"
}

// RedisMonth is a Memorystore instance's monthly price.
func (p Prices) RedisMonth(tier string, gb int) (float64, error) {
	rates := p.Memorystore.StandardGBHour
	switch tier {
	case "BASIC":
	case "STANDARD_HA":
	default:
		return 0, fmt.Errorf("Memorystore tier %q: want BASIC or STANDARD_HA", tier)
	}
	if tier == "BASIC" {
		rates = p.Memorystore.BasicGBHour
	}
	return rates[redisTier(gb)] * float64(gb) * hoursPerMonth, nil
}

// runsPerHour reads how often a cron schedule fires from its minute and
// hour fields ("* * * * *" 60, "*/5 * * * *" 12, "0 * * * *" 1); other
// forms are refused rather than guessed.
func runsPerHour(cron string) (float64, error) {
	f := strings.Fields(cron)
	if len(f) != 5 || f[1] != "*" || f[2] != "*" || f[3] != "*" || f[4] != "*" {
		return 0, fmt.Errorf("schedule %q: only minute patterns are understood", cron)
	}
	switch m := f[0]; {
	case m == "*":
		return 60, nil
	case strings.HasPrefix(m, "*/"):
		n, err := strconv.Atoi(m[2:])
		if err != nil || n < 1 || n > 60 {
			return 0, fmt.Errorf("schedule %q: bad step", cron)
		}
		return float64((59 / n) + 1), nil
	default:
		return float64(len(strings.Split(m, ","))), nil
	}
}

// Monthly prices workload w on deployment d: the reports as measured
// (small and big, each the mean of its report types), and what the
// deployment pays idle: Memorystore, DrainTriggers' drain, the sweeper, the
// scheduler jobs, minimum instances, and the CSVs kept for the bucket's
// retention.
func (p Prices) Monthly(w Workload, d Deployment, small, big PerReport) (Monthly, error) {
	m := Monthly{Workload: w}
	add := func(item, basis string, usd float64, fixed bool) {
		m.Lines = append(m.Lines, CostLine{Item: item, Basis: basis, USD: usd, Fixed: fixed})
		m.TotalUSD += usd
		if fixed {
			m.FixedUSD += usd
		}
	}
	redis, err := p.RedisMonth(d.RedisTier, d.RedisGB)
	if err != nil {
		return m, err
	}
	add("Memorystore", fmt.Sprintf("%s %d GB (module defaults), %d h", d.RedisTier, d.RedisGB, hoursPerMonth), redis, true)
	sec := w.Days * 24 * 3600
	busy := func(ep string, secPerRun float64) (float64, string, error) {
		s, ok := d.Sizes[ep]
		if !ok {
			return 0, "", fmt.Errorf("no size for %s in the Terraform module", ep)
		}
		cron, ok := d.Crons[ep]
		if !ok {
			return 0, "", fmt.Errorf("no schedule for %s in the Terraform module", ep)
		}
		perHour, err := runsPerHour(cron)
		if err != nil {
			return 0, "", err
		}
		runs := perHour * 24 * w.Days
		busy := runs * secPerRun
		usd := busy*(s.VCPU*p.CloudRun.VCPUSecond+s.GiB*p.CloudRun.GiBSecond) + runs*p.CloudRun.PerMillionRequest/1e6
		return usd, fmt.Sprintf("%.0f runs (%q) x %.0f s at %.3f vCPU, %s", runs, cron, secPerRun, s.VCPU, s.Memory), nil
	}
	usd, basis, err := busy("DrainTriggers", w.DrainBusySecPerMin)
	if err != nil {
		return m, err
	}
	add("DrainTriggers drain", basis, usd, true)
	if usd, basis, err = busy("Sweep", w.SweepSecPerRun); err != nil {
		return m, err
	}
	add("sweeper (Sweep)", basis, usd, true)
	add("Cloud Scheduler", fmt.Sprintf("%d jobs", len(d.Scheduled)), float64(len(d.Scheduled))*p.Scheduler.JobMonth, true)
	var minInst float64
	for _, s := range d.Sizes {
		minInst += float64(d.MinInstances) * sec * (s.VCPU*p.CloudRun.IdleVCPUSecond + s.GiB*p.CloudRun.IdleGiBSecond)
	}
	add("minimum instances", fmt.Sprintf("min_instance_count %d on %d functions", d.MinInstances, len(d.Sizes)), minInst, true)
	add("small reports", fmt.Sprintf("%d a day x $%.7f", w.SmallPerDay, small.Cost.TotalUSD), float64(w.SmallPerDay)*w.Days*small.Cost.TotalUSD, false)
	add("big reports", fmt.Sprintf("%d a day x $%.5f", w.BigPerDay, big.Cost.TotalUSD), float64(w.BigPerDay)*w.Days*big.Cost.TotalUSD, false)
	stored := float64(d.RetentionDays) * (float64(w.SmallPerDay)*float64(small.CSVBytes) + float64(w.BigPerDay)*float64(big.CSVBytes)) / (1 << 30)
	add("CSVs stored", fmt.Sprintf("%.1f GiB kept %d days", stored, d.RetentionDays), stored*p.Storage.GBMonth, false)

	if alt, err := p.RedisMonth("BASIC", 1); err == nil {
		m.Alternatives = append(m.Alternatives, CostLine{Item: "Memorystore", Basis: "BASIC 1 GB instead", USD: alt, Fixed: true})
	}
	return m, nil
}
