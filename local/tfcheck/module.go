// Package tfcheck checks the Terraform module in terraform/ offline, without
// a provider: it parses the module with hashicorp/hcl/v2, evaluates variable
// defaults and locals, expands for_each and count over the literal maps the
// module keeps in locals, and then checks the deployment rules (see Check)
// against the topology the code defines.
//
// Values that only a provider knows (IDs, emails, URLs) evaluate to unknown
// values carrying a Ref mark that names the resource instance they come
// from, so a check can follow `topic = google_pubsub_topic.topic["x"].id`
// to the topic instance and read its name.
package tfcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Problem is one rule the module breaks.
type Problem struct {
	Rule string // short identifier, e.g. "dead-letter-policy"
	Pos  string // file:line in the module
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Rule, p.Pos, p.Msg) }

// Ref marks a value derived from a resource instance. Mode is "resource" or
// "data"; Key is the for_each key or count index, "" for a single instance.
type Ref struct {
	Mode, Type, Name, Key string
}

// Addr is the Terraform address of the instance.
func (r Ref) Addr() string {
	a := r.Type + "." + r.Name
	if r.Mode == "data" {
		a = "data." + a
	}
	if r.Key != "" {
		a += fmt.Sprintf("[%q]", r.Key)
	}
	return a
}

// Var marks a value derived from input variable var.<name>, so a check can
// tell a setting the operator controls from a literal, also when it reaches
// a resource through locals or each.value.
type Var string

// Placeholders for the data a provider would read. The project number is
// known here so that the Pub/Sub service agent's address evaluates to a
// string a check can recognise.
const (
	PlaceholderProjectNumber = "PROJECT_NUMBER"
	PlaceholderProjectID     = "PROJECT_ID"
)

// Module is one Terraform module directory.
type Module struct {
	Dir       string
	Resources []*Resource // managed and data resources, in file order
	Problems  []Problem   // parse and evaluation problems

	vars    map[string]cty.Value
	locals  map[string]cty.Value
	localEx map[string]*hclsyntax.Attribute
	funcs   map[string]function.Function
}

// Resource is one resource or data block.
type Resource struct {
	Mode, Type, Name string
	Block            *hclsyntax.Block
	Instances        []*Instance
	expanded         bool // for_each/count evaluated
}

// Instance is one instance of a resource.
type Instance struct {
	Res   *Resource
	Key   string // for_each key or count index; "" for a single instance
	each  cty.Value
	count cty.Value
	m     *Module
}

// Ref returns the instance's address as a Ref.
func (i *Instance) Ref() Ref { return Ref{i.Res.Mode, i.Res.Type, i.Res.Name, i.Key} }

// Addr is the instance's Terraform address.
func (i *Instance) Addr() string { return i.Ref().Addr() }

// Body is the instance's top-level block, evaluated in its context.
func (i *Instance) Body() Block {
	vars := map[string]cty.Value{}
	if i.each != cty.NilVal {
		vars["each"] = i.each
	}
	if i.count != cty.NilVal {
		vars["count"] = i.count
	}
	ctx := i.m.evalContext(true).NewChild()
	ctx.Variables = vars
	return Block{Type: i.Res.Block.Type, Body: i.Res.Block.Body, Range: i.Res.Block.DefRange(), ctx: ctx, m: i.m}
}

// Load parses every .tf file of dir and evaluates what can be known offline.
func Load(dir string) (*Module, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tfcheck: %w", err)
	}
	m := &Module{
		Dir:     dir,
		vars:    map[string]cty.Value{},
		locals:  map[string]cty.Value{},
		localEx: map[string]*hclsyntax.Attribute{},
		funcs:   functions(),
	}
	p := hclparse.NewParser()
	var bodies []*hclsyntax.Body
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tf") {
			continue
		}
		f, diags := p.ParseHCLFile(filepath.Join(dir, e.Name()))
		m.diags("parse", diags)
		if f == nil || diags.HasErrors() {
			continue
		}
		bodies = append(bodies, f.Body.(*hclsyntax.Body))
	}
	for _, body := range bodies {
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				m.loadVariable(b)
			case "locals":
				for name, a := range b.Body.Attributes {
					if _, dup := m.localEx[name]; dup {
						m.problem("parse", a.SrcRange, "local.%s is defined twice", name)
					}
					m.localEx[name] = a
				}
			case "resource", "data":
				if len(b.Labels) != 2 {
					continue
				}
				m.Resources = append(m.Resources, &Resource{Mode: b.Type, Type: b.Labels[0], Name: b.Labels[1], Block: b})
			}
		}
	}
	// for_each may depend on locals, and locals may refer to resources: first
	// evaluate locals with every resource unexpanded, then expand, then
	// evaluate the locals again with every instance addressable.
	m.evalLocals(false)
	for _, r := range m.Resources {
		m.expand(r)
	}
	m.evalLocals(true)
	for _, r := range m.Resources {
		m.refreshEach(r)
	}
	return m, nil
}

// refreshEach sets each.value again from the final locals. expand took it
// while every resource was still one unexpanded value, so a for_each map
// whose values name resource instances (service_account =
// google_service_account.listener[ep]) would otherwise lose their keys.
// The keys cannot change: they were known without any resource.
func (m *Module) refreshEach(r *Resource) {
	a, ok := r.Block.Body.Attributes["for_each"]
	if !ok || len(r.Instances) == 0 {
		return
	}
	v, diags := a.Expr.Value(m.evalContext(true))
	if diags.HasErrors() {
		return // expand reported what it could not evaluate
	}
	// As in expand, an element keeps only its own marks: the map's marks
	// include every mark a filter (`if f.push != null`) looked at.
	v, _ = v.Unmark()
	for _, in := range r.Instances {
		if e, ok := Index(v, in.Key); ok && in.each != cty.NilVal {
			in.each = cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(in.Key), "value": e})
		}
	}
}

func (m *Module) loadVariable(b *hclsyntax.Block) {
	if len(b.Labels) != 1 {
		return
	}
	name := b.Labels[0]
	ty := cty.DynamicPseudoType
	var def *typeexpr.Defaults
	if a, ok := b.Body.Attributes["type"]; ok {
		t, d, diags := typeexpr.TypeConstraintWithDefaults(a.Expr)
		m.diags("parse", diags)
		if !diags.HasErrors() {
			ty, def = t, d
		}
	}
	a, ok := b.Body.Attributes["default"]
	if !ok {
		// Set at apply time: unknown here.
		m.vars[name] = cty.UnknownVal(ty).Mark(Var(name))
		return
	}
	v, diags := a.Expr.Value(nil)
	m.diags("parse", diags)
	if diags.HasErrors() {
		m.vars[name] = cty.UnknownVal(ty).Mark(Var(name))
		return
	}
	if def != nil {
		v = def.Apply(v)
	}
	if cv, err := convert.Convert(v, ty); err == nil {
		v = cv
	} else {
		m.problem("parse", a.SrcRange, "var.%s: default does not match its type: %s", name, err)
	}
	m.vars[name] = v.Mark(Var(name))
}

// evalLocals evaluates the locals to a fixed point: a local that refers to
// one not yet known is tried again on the next pass.
func (m *Module) evalLocals(final bool) {
	m.locals = map[string]cty.Value{}
	pending := map[string]*hclsyntax.Attribute{}
	for k, a := range m.localEx {
		pending[k] = a
	}
	for len(pending) > 0 {
		progress := false
		last := map[string]hcl.Diagnostics{}
		for _, name := range sortedKeys(pending) {
			a := pending[name]
			v, diags := a.Expr.Value(m.evalContext(final))
			if diags.HasErrors() {
				last[name] = diags
				continue
			}
			m.locals[name] = v
			delete(pending, name)
			progress = true
		}
		if !progress {
			for _, name := range sortedKeys(pending) {
				if final {
					m.diags("parse", last[name])
				}
				m.locals[name] = cty.DynamicVal
			}
			return
		}
	}
}

// expand evaluates for_each or count and creates the instances.
func (m *Module) expand(r *Resource) {
	r.expanded = true
	body := r.Block.Body
	ctx := m.evalContext(false)
	if a, ok := body.Attributes["for_each"]; ok {
		v, diags := a.Expr.Value(ctx)
		m.diags("parse", diags)
		if diags.HasErrors() {
			return
		}
		v, _ = v.Unmark()
		if !v.IsKnown() || v.IsNull() {
			m.problem("parse", a.SrcRange, "for_each of %s.%s is not known without a provider: iterate a literal map in locals", r.Type, r.Name)
			return
		}
		ty := v.Type()
		switch {
		case ty.IsSetType():
			if !v.IsWhollyKnown() {
				m.problem("parse", a.SrcRange, "for_each of %s.%s is a set with unknown elements", r.Type, r.Name)
				return
			}
			for it := v.ElementIterator(); it.Next(); {
				_, e := it.Element()
				e, _ = e.Unmark()
				if e.Type() != cty.String {
					m.problem("parse", a.SrcRange, "for_each of %s.%s is a set of %s, not of strings", r.Type, r.Name, e.Type().FriendlyName())
					return
				}
				r.Instances = append(r.Instances, &Instance{Res: r, Key: e.AsString(), m: m,
					each: cty.ObjectVal(map[string]cty.Value{"key": e, "value": e})})
			}
		case ty.IsMapType() || ty.IsObjectType():
			for it := v.ElementIterator(); it.Next(); {
				k, e := it.Element()
				r.Instances = append(r.Instances, &Instance{Res: r, Key: k.AsString(), m: m,
					each: cty.ObjectVal(map[string]cty.Value{"key": k, "value": e})})
			}
		default:
			m.problem("parse", a.SrcRange, "for_each of %s.%s must be a map or a set of strings, not %s", r.Type, r.Name, ty.FriendlyName())
		}
		return
	}
	if a, ok := body.Attributes["count"]; ok {
		v, diags := a.Expr.Value(ctx)
		m.diags("parse", diags)
		if diags.HasErrors() {
			return
		}
		v, _ = v.Unmark()
		if !v.IsKnown() || v.IsNull() || v.Type() != cty.Number {
			m.problem("parse", a.SrcRange, "count of %s.%s is not a number known without a provider", r.Type, r.Name)
			return
		}
		n, _ := v.AsBigFloat().Int64()
		for i := int64(0); i < n; i++ {
			r.Instances = append(r.Instances, &Instance{Res: r, Key: strconv.FormatInt(i, 10), m: m,
				count: cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(i)})})
		}
		return
	}
	r.Instances = []*Instance{{Res: r, m: m}}
}

// evalContext is the module-level scope. With expanded, resources with
// for_each or count are objects/tuples of their instances; without, every
// resource is one unknown value.
func (m *Module) evalContext(expanded bool) *hcl.EvalContext {
	managed := map[string]map[string]cty.Value{}
	data := map[string]map[string]cty.Value{}
	for _, r := range m.Resources {
		group := managed
		if r.Mode == "data" {
			group = data
		}
		if group[r.Type] == nil {
			group[r.Type] = map[string]cty.Value{}
		}
		group[r.Type][r.Name] = m.resourceValue(r, expanded)
	}
	vars := map[string]cty.Value{
		"var":   cty.ObjectVal(m.vars),
		"local": cty.ObjectVal(m.locals),
		"path": cty.ObjectVal(map[string]cty.Value{
			"module": cty.StringVal(m.Dir),
			"root":   cty.StringVal(m.Dir),
			"cwd":    cty.StringVal(m.Dir),
		}),
		"terraform": cty.ObjectVal(map[string]cty.Value{"workspace": cty.StringVal("default")}),
	}
	dataObj := map[string]cty.Value{}
	for t, names := range data {
		dataObj[t] = cty.ObjectVal(names)
	}
	vars["data"] = cty.ObjectVal(dataObj)
	for t, names := range managed {
		vars[t] = cty.ObjectVal(names)
	}
	return &hcl.EvalContext{Variables: vars, Functions: m.funcs}
}

func (m *Module) resourceValue(r *Resource, expanded bool) cty.Value {
	one := func(key string) cty.Value {
		ref := Ref{r.Mode, r.Type, r.Name, key}
		if r.Mode == "data" && r.Type == "google_project" {
			return cty.ObjectVal(map[string]cty.Value{
				"number":     cty.StringVal(PlaceholderProjectNumber),
				"project_id": cty.StringVal(PlaceholderProjectID),
				"id":         cty.StringVal("projects/" + PlaceholderProjectID),
				"name":       cty.StringVal(PlaceholderProjectID),
			}).Mark(ref)
		}
		return cty.DynamicVal.Mark(ref)
	}
	body := r.Block.Body
	_, hasForEach := body.Attributes["for_each"]
	_, hasCount := body.Attributes["count"]
	if !expanded || !r.expanded || (!hasForEach && !hasCount) {
		return one("")
	}
	if hasCount {
		vals := make([]cty.Value, len(r.Instances))
		for i, in := range r.Instances {
			vals[i] = one(in.Key)
		}
		return cty.TupleVal(vals)
	}
	vals := map[string]cty.Value{}
	for _, in := range r.Instances {
		vals[in.Key] = one(in.Key)
	}
	return cty.ObjectVal(vals)
}

func (m *Module) problem(rule string, rng hcl.Range, format string, args ...any) {
	m.Problems = append(m.Problems, Problem{Rule: rule, Pos: pos(rng), Msg: fmt.Sprintf(format, args...)})
}

func (m *Module) diags(rule string, diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		var rng hcl.Range
		if d.Subject != nil {
			rng = *d.Subject
		}
		m.Problems = append(m.Problems, Problem{Rule: rule, Pos: pos(rng), Msg: d.Summary + ": " + d.Detail})
	}
}

func pos(rng hcl.Range) string {
	if rng.Filename == "" {
		return "?"
	}
	return fmt.Sprintf("%s:%d", filepath.Base(rng.Filename), rng.Start.Line)
}

// Of lists the instances of managed resources of type typ.
func (m *Module) Of(typ string) []*Instance {
	var out []*Instance
	for _, r := range m.Resources {
		if r.Mode == "resource" && r.Type == typ {
			out = append(out, r.Instances...)
		}
	}
	return out
}

// Lookup finds the instance a Ref names.
func (m *Module) Lookup(ref Ref) *Instance {
	for _, r := range m.Resources {
		if r.Mode != ref.Mode || r.Type != ref.Type || r.Name != ref.Name {
			continue
		}
		for _, in := range r.Instances {
			if in.Key == ref.Key {
				return in
			}
		}
	}
	return nil
}

// Block is a block of an instance with the scope to evaluate it in.
type Block struct {
	Type  string
	Body  *hclsyntax.Body
	Range hcl.Range
	ctx   *hcl.EvalContext
	m     *Module
}

// Has says whether the block sets attribute name.
func (b Block) Has(name string) bool {
	_, ok := b.Body.Attributes[name]
	return ok
}

// Attr returns the syntax of attribute name.
func (b Block) Attr(name string) (*hclsyntax.Attribute, bool) {
	a, ok := b.Body.Attributes[name]
	return a, ok
}

// Eval evaluates attribute name; a missing attribute is cty.NilVal.
func (b Block) Eval(name string) (cty.Value, hcl.Diagnostics) {
	a, ok := b.Body.Attributes[name]
	if !ok {
		return cty.NilVal, nil
	}
	return a.Expr.Value(b.ctx)
}

// Pos is the position of attribute name, or of the block without it.
func (b Block) Pos(name string) string {
	if a, ok := b.Body.Attributes[name]; ok {
		return pos(a.SrcRange)
	}
	return pos(b.Range)
}

// Blocks returns the nested blocks of type typ, with dynamic blocks
// expanded.
func (b Block) Blocks(typ string) []Block {
	var out []Block
	for _, nb := range b.Body.Blocks {
		switch {
		case nb.Type == typ:
			out = append(out, Block{Type: typ, Body: nb.Body, Range: nb.DefRange(), ctx: b.ctx, m: b.m})
		case nb.Type == "dynamic" && len(nb.Labels) == 1 && nb.Labels[0] == typ:
			out = append(out, b.dynamic(nb)...)
		}
	}
	return out
}

// Block returns the first nested block of type typ.
func (b Block) Block(typ string) (Block, bool) {
	bs := b.Blocks(typ)
	if len(bs) == 0 {
		return Block{}, false
	}
	return bs[0], true
}

func (b Block) dynamic(nb *hclsyntax.Block) []Block {
	iter := nb.Labels[0]
	if a, ok := nb.Body.Attributes["iterator"]; ok {
		iter = hcl.ExprAsKeyword(a.Expr)
	}
	var content *hclsyntax.Block
	for _, c := range nb.Body.Blocks {
		if c.Type == "content" {
			content = c
		}
	}
	a, ok := nb.Body.Attributes["for_each"]
	if !ok || content == nil {
		b.m.problem("parse", nb.DefRange(), "dynamic %q needs for_each and content", iter)
		return nil
	}
	v, diags := a.Expr.Value(b.ctx)
	b.m.diags("parse", diags)
	v, _ = v.Unmark()
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || !v.CanIterateElements() {
		b.m.problem("parse", a.SrcRange, "for_each of dynamic %q is not known without a provider", iter)
		return nil
	}
	var out []Block
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		ctx := b.ctx.NewChild()
		ctx.Variables = map[string]cty.Value{iter: cty.ObjectVal(map[string]cty.Value{"key": k, "value": e})}
		out = append(out, Block{Type: iter, Body: content.Body, Range: nb.DefRange(), ctx: ctx, m: b.m})
	}
	return out
}

// Refs lists the resource instances a value was derived from, of type typ
// ("" for any).
func Refs(v cty.Value, typ string) []Ref {
	if v == cty.NilVal {
		return nil
	}
	_, marks := v.UnmarkDeep()
	var out []Ref
	for mk := range marks {
		if r, ok := mk.(Ref); ok && (typ == "" || r.Type == typ) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr() < out[j].Addr() })
	return out
}

// Vars lists the input variables a value was derived from.
func Vars(v cty.Value) []string {
	if v == cty.NilVal {
		return nil
	}
	_, marks := v.UnmarkDeep()
	var out []string
	for mk := range marks {
		if n, ok := mk.(Var); ok {
			out = append(out, string(n))
		}
	}
	sort.Strings(out)
	return out
}

// Known returns v without marks, and whether it is wholly known and not null.
func Known(v cty.Value) (cty.Value, bool) {
	if v == cty.NilVal {
		return v, false
	}
	v, _ = v.UnmarkDeep()
	return v, v.IsWhollyKnown() && !v.IsNull()
}

// String returns v as a string if it is a known string (or convertible).
func String(v cty.Value) (string, bool) {
	v, ok := Known(v)
	if !ok {
		return "", false
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil {
		return "", false
	}
	return s.AsString(), true
}

// Int returns v as an integer if it is a known number.
func Int(v cty.Value) (int64, bool) {
	v, ok := Known(v)
	if !ok {
		return 0, false
	}
	n, err := convert.Convert(v, cty.Number)
	if err != nil {
		return 0, false
	}
	i, acc := n.AsBigFloat().Int64()
	return i, acc == 0
}

// Bool returns v as a bool if it is a known bool.
func Bool(v cty.Value) (bool, bool) {
	v, ok := Known(v)
	if !ok {
		return false, false
	}
	b, err := convert.Convert(v, cty.Bool)
	if err != nil {
		return false, false
	}
	return b.True(), true
}

// Keys returns the attribute names of a known-keyed map or object.
func Keys(v cty.Value) ([]string, bool) {
	if v == cty.NilVal {
		return nil, false
	}
	v, _ = v.UnmarkDeep()
	if !v.IsKnown() || v.IsNull() || !(v.Type().IsMapType() || v.Type().IsObjectType()) {
		return nil, false
	}
	var ks []string
	for it := v.ElementIterator(); it.Next(); {
		k, _ := it.Element()
		ks = append(ks, k.AsString())
	}
	sort.Strings(ks)
	return ks, true
}

// Index returns element key of a map or object value, keeping its marks.
func Index(v cty.Value, key string) (cty.Value, bool) {
	if v == cty.NilVal {
		return cty.NilVal, false
	}
	u, marks := v.Unmark()
	if !u.IsKnown() || u.IsNull() {
		return cty.NilVal, false
	}
	switch {
	case u.Type().IsObjectType():
		if !u.Type().HasAttribute(key) {
			return cty.NilVal, false
		}
		return u.GetAttr(key).WithMarks(marks), true
	case u.Type().IsMapType():
		k := cty.StringVal(key)
		if !u.HasIndex(k).True() {
			return cty.NilVal, false
		}
		return u.Index(k).WithMarks(marks), true
	}
	return cty.NilVal, false
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// functions are the Terraform functions the module may use. A function
// missing here makes its caller unknown to the check, which then reports it.
func functions() map[string]function.Function {
	identity := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType, AllowMarked: true, AllowUnknown: true, AllowNull: true}},
		Type:   func(args []cty.Value) (cty.Type, error) { return args[0].Type(), nil },
		Impl:   func(args []cty.Value, _ cty.Type) (cty.Value, error) { return args[0], nil },
	})
	prefix := func(has func(s, p string) bool) function.Function {
		return function.New(&function.Spec{
			Params: []function.Parameter{{Name: "s", Type: cty.String}, {Name: "p", Type: cty.String}},
			Type:   function.StaticReturnType(cty.Bool),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				return cty.BoolVal(has(args[0].AsString(), args[1].AsString())), nil
			},
		})
	}
	return map[string]function.Function{
		"abs":          stdlib.AbsoluteFunc,
		"abspath":      identityString(),
		"can":          tryfunc.CanFunc,
		"ceil":         stdlib.CeilFunc,
		"chunklist":    stdlib.ChunklistFunc,
		"coalesce":     stdlib.CoalesceFunc,
		"compact":      stdlib.CompactFunc,
		"concat":       stdlib.ConcatFunc,
		"contains":     stdlib.ContainsFunc,
		"distinct":     stdlib.DistinctFunc,
		"element":      stdlib.ElementFunc,
		"endswith":     prefix(strings.HasSuffix),
		"flatten":      stdlib.FlattenFunc,
		"floor":        stdlib.FloorFunc,
		"format":       stdlib.FormatFunc,
		"formatlist":   stdlib.FormatListFunc,
		"join":         stdlib.JoinFunc,
		"jsonencode":   stdlib.JSONEncodeFunc,
		"keys":         stdlib.KeysFunc,
		"length":       stdlib.LengthFunc,
		"lookup":       stdlib.LookupFunc,
		"lower":        stdlib.LowerFunc,
		"max":          stdlib.MaxFunc,
		"merge":        stdlib.MergeFunc,
		"min":          stdlib.MinFunc,
		"nonsensitive": identity,
		"range":        stdlib.RangeFunc,
		"regex":        stdlib.RegexFunc,
		"regexall":     stdlib.RegexAllFunc,
		"replace":      stdlib.ReplaceFunc,
		"reverse":      stdlib.ReverseListFunc,
		"sensitive":    identity,
		"setproduct":   stdlib.SetProductFunc,
		"setunion":     stdlib.SetUnionFunc,
		"slice":        stdlib.SliceFunc,
		"sort":         stdlib.SortFunc,
		"split":        stdlib.SplitFunc,
		"startswith":   prefix(strings.HasPrefix),
		"substr":       stdlib.SubstrFunc,
		"sum":          sumFunc(),
		"tobool":       stdlib.MakeToFunc(cty.Bool),
		"tolist":       stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":        stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":     stdlib.MakeToFunc(cty.Number),
		"toset":        stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":     stdlib.MakeToFunc(cty.String),
		"trimprefix":   stdlib.TrimPrefixFunc,
		"trimspace":    stdlib.TrimSpaceFunc,
		"trimsuffix":   stdlib.TrimSuffixFunc,
		"try":          tryfunc.TryFunc,
		"upper":        stdlib.UpperFunc,
		"values":       stdlib.ValuesFunc,
		"zipmap":       stdlib.ZipmapFunc,
	}
}

func identityString() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "s", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl:   func(args []cty.Value, _ cty.Type) (cty.Value, error) { return args[0], nil },
	})
}

// sumFunc is Terraform's sum over a list, set or tuple of numbers.
func sumFunc() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.Number),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v := args[0]
			if !v.CanIterateElements() || v.LengthInt() == 0 {
				return cty.NilVal, fmt.Errorf("sum needs a non-empty collection of numbers")
			}
			total := cty.Zero
			for it := v.ElementIterator(); it.Next(); {
				_, e := it.Element()
				n, err := convert.Convert(e, cty.Number)
				if err != nil {
					return cty.NilVal, err
				}
				if !n.IsKnown() {
					return cty.UnknownVal(cty.Number), nil
				}
				total = total.Add(n)
			}
			return total, nil
		},
	})
}

// Local returns the value of local.name.
func (m *Module) Local(name string) (cty.Value, bool) {
	v, ok := m.locals[name]
	return v, ok
}
