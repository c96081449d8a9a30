package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Size is one function's configured instance size, as the deployment
// bills it.
type Size struct {
	Memory string  `json:"memory"` // Cloud Functions notation, "512Mi"
	GiB    float64 `json:"gib"`
	VCPU   float64 `json:"vcpu"`
	// CPUFromMemory is set when the module leaves cpu null and Cloud Run
	// sizes it from the memory (cpuForMemory).
	CPUFromMemory bool `json:"cpuFromMemory,omitempty"`
}

// Deployment is what the cost model reads from the Terraform module: the
// one source of the sizes (its variables' defaults, as an unconfigured
// deployment gets them).
type Deployment struct {
	Sizes map[string]Size `json:"sizes"` // by entry point
	// Scheduled are the entry points Cloud Scheduler fires (a job each).
	Scheduled []string `json:"scheduled"`
	// Crons are their schedules, by entry point.
	Crons map[string]string `json:"crons"`
	// MinInstances is min_instance_count of every function (one value
	// in the module).
	MinInstances  int    `json:"minInstances"`
	RedisTier     string `json:"redisTier"`
	RedisGB       int    `json:"redisGb"`
	RetentionDays int    `json:"reportRetentionDays"`
}

// cpuForMemory is the vCPU Cloud Run functions gives an instance whose cpu
// is not set, by memory (the Cloud Run functions memory/CPU table; the
// first row at or above the memory applies).
var cpuForMemory = []struct {
	MiB  float64
	VCPU float64
}{{128, 0.083}, {256, 0.167}, {512, 0.333}, {1024, 0.583}, {2048, 1}, {4096, 2}, {8192, 2}, {16384, 4}, {32768, 8}}

var memoryRE = regexp.MustCompile(`^([0-9]+)(Mi|Gi|M|G)$`)

// parseMemory turns "512Mi" or "1Gi" into GiB.
func parseMemory(s string) (float64, error) {
	m := memoryRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("memory %q: want a number and Mi or Gi", s)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	switch m[2] {
	case "Gi":
		return n, nil
	case "G":
		return n * 1e9 / (1 << 30), nil
	case "M":
		return n * 1e6 / (1 << 30), nil
	}
	return n / 1024, nil
}

func sizeOf(memory string, cpu cty.Value) (Size, error) {
	gib, err := parseMemory(memory)
	if err != nil {
		return Size{}, err
	}
	s := Size{Memory: memory, GiB: gib}
	if cpu.IsNull() {
		s.CPUFromMemory = true
		mib := gib * 1024
		for _, r := range cpuForMemory {
			s.VCPU = r.VCPU
			if mib <= r.MiB {
				break
			}
		}
		return s, nil
	}
	if cpu.Type() == cty.Number {
		s.VCPU, _ = cpu.AsBigFloat().Float64()
		return s, nil
	}
	if cpu.Type() != cty.String {
		return Size{}, fmt.Errorf("cpu of type %s", cpu.Type().FriendlyName())
	}
	str := cpu.AsString()
	if v, ok := cutSuffix(str, "m"); ok {
		n, err := strconv.ParseFloat(v, 64)
		s.VCPU = n / 1000
		return s, err
	}
	s.VCPU, err = strconv.ParseFloat(str, 64)
	return s, err
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// ReadDeployment reads the Terraform module in dir: every function's
// memory and cpu (the attributes of each function object in its locals,
// evaluated with the variables' defaults), which of them have a schedule,
// min_instance_count, and the Memorystore tier and size and the report
// retention (variable defaults). Each function object is found as an item
// "EntryPoint = { memory = ..., cpu = ... }" of a local, or as the value
// of a for expression over another local's keys (the listeners).
func ReadDeployment(dir string) (Deployment, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		return Deployment{}, fmt.Errorf("read the Terraform module: no *.tf files in %s", dir)
	}
	p := hclparse.NewParser()
	var bodies []*hclsyntax.Body
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			return Deployment{}, fmt.Errorf("read the Terraform module: %w", diags)
		}
		bodies = append(bodies, file.Body.(*hclsyntax.Body))
	}
	vars := map[string]cty.Value{}
	locals := map[string]hclsyntax.Expression{}
	var minInstances []hclsyntax.Expression
	for _, b := range bodies {
		for _, blk := range b.Blocks {
			switch blk.Type {
			case "variable":
				if a, ok := blk.Body.Attributes["default"]; ok && len(blk.Labels) == 1 {
					v, diags := a.Expr.Value(nil)
					if diags.HasErrors() {
						return Deployment{}, fmt.Errorf("variable %s default: %w", blk.Labels[0], diags)
					}
					vars[blk.Labels[0]] = v
				}
			case "locals":
				for n, a := range blk.Body.Attributes {
					locals[n] = a.Expr
				}
			case "resource":
				walkBlocks(blk.Body, func(body *hclsyntax.Body) {
					if a, ok := body.Attributes["min_instance_count"]; ok {
						minInstances = append(minInstances, a.Expr)
					}
				})
			}
		}
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}}
	d := Deployment{Sizes: map[string]Size{}, Crons: map[string]string{}}
	add := func(ep string, obj *hclsyntax.ObjectConsExpr) error {
		attrs := objectAttrs(obj)
		memExpr, ok := attrs["memory"]
		if !ok {
			return nil
		}
		mem, diags := memExpr.Value(ctx)
		if diags.HasErrors() || mem.Type() != cty.String {
			return fmt.Errorf("%s memory: %v", ep, diags)
		}
		cpu := cty.NullVal(cty.String)
		if e, ok := attrs["cpu"]; ok {
			if cpu, diags = e.Value(ctx); diags.HasErrors() {
				return fmt.Errorf("%s cpu: %w", ep, diags)
			}
		}
		s, err := sizeOf(mem.AsString(), cpu)
		if err != nil {
			return fmt.Errorf("%s: %w", ep, err)
		}
		d.Sizes[ep] = s
		if e, ok := attrs["schedule"]; ok {
			if v, diags := e.Value(&hcl.EvalContext{}); !diags.HasErrors() && v.IsNull() {
				return nil
			}
			d.Scheduled = append(d.Scheduled, ep) // anything but a literal null
			if sch, ok := e.(*hclsyntax.ObjectConsExpr); ok {
				if c, ok := objectAttrs(sch)["cron"]; ok {
					if v, diags := c.Value(ctx); !diags.HasErrors() && v.Type() == cty.String {
						d.Crons[ep] = v.AsString()
					}
				}
			}
		}
		return nil
	}
	for name, e := range locals {
		switch e := e.(type) {
		case *hclsyntax.ObjectConsExpr:
			for _, it := range e.Items {
				obj, ok := it.ValueExpr.(*hclsyntax.ObjectConsExpr)
				if !ok {
					continue
				}
				key, diags := it.KeyExpr.Value(nil)
				if diags.HasErrors() || key.Type() != cty.String {
					continue
				}
				if err := add(key.AsString(), obj); err != nil {
					return d, err
				}
			}
		case *hclsyntax.ForExpr:
			obj, ok := e.ValExpr.(*hclsyntax.ObjectConsExpr)
			if !ok || e.KeyExpr == nil {
				continue
			}
			if _, ok := objectAttrs(obj)["memory"]; !ok {
				continue
			}
			// for ep, l in local.X : ep => {...}: the entry points are X's keys.
			trav, ok := e.CollExpr.(*hclsyntax.ScopeTraversalExpr)
			if !ok || len(trav.Traversal) != 2 || trav.Traversal.RootName() != "local" {
				return d, fmt.Errorf("local %s: a for expression over %T", name, e.CollExpr)
			}
			src := locals[trav.Traversal[1].(hcl.TraverseAttr).Name]
			eps, err := collectionKeys(dir, src)
			if err != nil {
				return d, fmt.Errorf("local %s: %w", name, err)
			}
			for _, ep := range eps {
				if err := add(ep, obj); err != nil {
					return d, err
				}
			}
		}
	}
	sort.Strings(d.Scheduled)
	for _, e := range minInstances {
		v, diags := e.Value(ctx)
		if diags.HasErrors() || v.Type() != cty.Number {
			return d, fmt.Errorf("min_instance_count is not a number the defaults decide: %v", diags)
		}
		n, _ := v.AsBigFloat().Int64()
		d.MinInstances = max(d.MinInstances, int(n))
	}
	if v, ok := vars["redis_tier"]; ok && v.Type() == cty.String {
		d.RedisTier = v.AsString()
	}
	if v, ok := vars["redis_memory_size_gb"]; ok && v.Type() == cty.Number {
		n, _ := v.AsBigFloat().Int64()
		d.RedisGB = int(n)
	}
	if v, ok := vars["report_retention_days"]; ok && v.Type() == cty.Number {
		n, _ := v.AsBigFloat().Int64()
		d.RetentionDays = int(n)
	}
	if len(d.Sizes) == 0 {
		return d, fmt.Errorf("read the Terraform module: no function with a memory in %s", dir)
	}
	return d, nil
}

// objectAttrs maps the literal keys of an object constructor to their values.
func objectAttrs(o *hclsyntax.ObjectConsExpr) map[string]hclsyntax.Expression {
	m := map[string]hclsyntax.Expression{}
	for _, it := range o.Items {
		if k, diags := it.KeyExpr.Value(nil); !diags.HasErrors() && k.Type() == cty.String {
			m[k.AsString()] = it.ValueExpr
		}
	}
	return m
}

func walkBlocks(b *hclsyntax.Body, fn func(*hclsyntax.Body)) {
	fn(b)
	for _, blk := range b.Blocks {
		walkBlocks(blk.Body, fn)
	}
}

// collectionKeys lists the keys of a local's value: an object written out,
// or local.topology.FIELD, an object of topology.json (the generated file
// the module decodes into local.topology).
func collectionKeys(dir string, src hclsyntax.Expression) ([]string, error) {
	var keys []string
	switch src := src.(type) {
	case *hclsyntax.ObjectConsExpr:
		for _, it := range src.Items {
			key, diags := it.KeyExpr.Value(nil)
			if !diags.HasErrors() && key.Type() == cty.String {
				keys = append(keys, key.AsString())
			}
		}
		return keys, nil
	case *hclsyntax.ScopeTraversalExpr:
		tr := src.Traversal
		if len(tr) == 3 && tr.RootName() == "local" {
			if a, ok := tr[1].(hcl.TraverseAttr); ok && a.Name == "topology" {
				field, _ := tr[2].(hcl.TraverseAttr)
				b, err := os.ReadFile(filepath.Join(dir, "topology.json"))
				if err != nil {
					return nil, err
				}
				var all map[string]json.RawMessage
				if err := json.Unmarshal(b, &all); err != nil {
					return nil, fmt.Errorf("topology.json: %w", err)
				}
				var m map[string]json.RawMessage
				if err := json.Unmarshal(all[field.Name], &m); err != nil || m == nil {
					return nil, fmt.Errorf("topology.json: %s is not an object", field.Name)
				}
				for k := range m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				return keys, nil
			}
		}
	}
	return nil, fmt.Errorf("its collection is neither an object nor an object of topology.json")
}
