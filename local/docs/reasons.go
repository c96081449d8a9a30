// Package docs checks the README against the code. Its extractor reads the
// Go sources (go/parser, go/ast: no type checking, no build) and finds every
// text a record can end FAILED with, so the README's troubleshooting table
// cannot fall behind the code.
package docs

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Reason is one way a record can end FAILED.
type Reason struct {
	// Key is the reason's fixed leading text, with "{}" for each variable
	// part it had to pass to reach a few words ("listener {}: {}").
	Key string
	// Format is the reason as the code builds it, a fmt format with what
	// could be resolved (sentinel texts, constants) filled in.
	Format string
	// Pos is where it is built, "shared/report/fetch.go:29".
	Pos string
}

// Blind is a construction that makes a reason the extractor cannot read.
type Blind struct {
	Pos  string // "functions/aggregator/aggregator.go:89"
	Expr string // the expression, as written
}

// minKeyWords is how many words of fixed text a key needs before it may
// stop at a variable part: "stage %d listener %s failed" would otherwise
// reduce to "stage", and "aggregator: %w" to "aggregator".
const minKeyWords = 3

// faultPath is the import path suffix of the error-class package.
const faultPath = "/shared/fault"

type pkg struct {
	dir    string
	funcs  map[string][]*ast.FuncDecl // by name; methods too
	values map[string]ast.Expr        // package-level const and var values
	types  map[string]bool            // declared type names
}

type file struct {
	rel     string
	ast     *ast.File
	pkg     *pkg
	imports map[string]string // local name → directory (module-relative), for the module's own imports
	faultAs string            // local name of the fault package, "" if not imported
}

type sink struct{ nargs, idx int }

// extractor holds the parsed sources.
type extractor struct {
	fset    *token.FileSet
	root    string
	pkgs    map[string]*pkg // by module-relative directory
	files   []*file
	byNode  map[*ast.FuncDecl]*file
	sinks   map[string][]sink
	reasons []Reason
	blind   []Blind
	seen    map[string]bool
}

// Extract reads the non-test Go files under dirs (module-relative, walked
// recursively) of the module at root, whose path is modPath, and returns
// the reasons found, sorted by key, and the constructions it cannot read.
//
// It finds: fault.Permanentf's format; fault.Permanent of fmt.Errorf,
// errors.New, a value of an error type declared in dirs (its Error
// method's format), a sentinel variable, or an error returned by a function
// in dirs (followed through its returns, so report.ParseParams' constructor
// is found); and the reason argument of every function or method whose
// name contains "fail" and which takes a string parameter named reason
// (MarkFailed, FailStale, Fail, fail), followed through constants, local
// variables assigned in the same function, fmt.Sprintf, "+", functions
// that return the reason, and strings.Builder texts (each fmt.Fprintf or
// WriteString into the builder is a reason part of its own).
func Extract(root, modPath string, dirs []string) ([]Reason, []Blind, error) {
	x := &extractor{fset: token.NewFileSet(), root: root, pkgs: map[string]*pkg{},
		byNode: map[*ast.FuncDecl]*file{}, sinks: map[string][]sink{}, seen: map[string]bool{}}
	for _, d := range dirs {
		if err := x.load(modPath, d); err != nil {
			return nil, nil, err
		}
	}
	x.findSinks()
	for _, f := range x.files {
		x.walk(f)
	}
	sort.Slice(x.reasons, func(i, j int) bool {
		if x.reasons[i].Key != x.reasons[j].Key {
			return x.reasons[i].Key < x.reasons[j].Key
		}
		return x.reasons[i].Pos < x.reasons[j].Pos
	})
	return x.reasons, x.blind, nil
}

func (x *extractor) load(modPath, dir string) error {
	return filepath.WalkDir(filepath.Join(x.root, dir), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || (strings.HasPrefix(name, ".") && name != ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		af, err := parser.ParseFile(x.fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parse %s: %w", path, err)
		}
		rel, err := filepath.Rel(x.root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		pdir := filepath.ToSlash(filepath.Dir(rel))
		p := x.pkgs[pdir]
		if p == nil {
			p = &pkg{dir: pdir, funcs: map[string][]*ast.FuncDecl{}, values: map[string]ast.Expr{}, types: map[string]bool{}}
			x.pkgs[pdir] = p
		}
		f := &file{rel: rel, ast: af, pkg: p, imports: map[string]string{}}
		for _, im := range af.Imports {
			ipath, _ := strconv.Unquote(im.Path.Value)
			name := ipath[strings.LastIndex(ipath, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			if strings.HasSuffix(ipath, faultPath) {
				f.faultAs = name
			}
			if strings.HasPrefix(ipath, modPath+"/") {
				f.imports[name] = strings.TrimPrefix(ipath, modPath+"/")
			}
		}
		for _, decl := range af.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				p.funcs[d.Name.Name] = append(p.funcs[d.Name.Name], d)
				x.byNode[d] = f
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.ValueSpec:
						for i, n := range s.Names {
							if i < len(s.Values) {
								p.values[n.Name] = s.Values[i]
							}
						}
					case *ast.TypeSpec:
						p.types[s.Name.Name] = true
					}
				}
			}
		}
		x.files = append(x.files, f)
		return nil
	})
}

// findSinks records every function, method or interface method whose name
// contains "fail" and which takes a string parameter named reason.
func (x *extractor) findSinks() {
	add := func(name string, ft *ast.FuncType) {
		if !strings.Contains(strings.ToLower(name), "fail") || ft.Params == nil {
			return
		}
		i, idx := 0, -1
		for _, fld := range ft.Params.List {
			n := max(len(fld.Names), 1)
			for j, nm := range fld.Names {
				if id, ok := fld.Type.(*ast.Ident); ok && id.Name == "string" && nm.Name == "reason" {
					idx = i + j
				}
			}
			i += n
		}
		if idx >= 0 {
			x.sinks[name] = append(x.sinks[name], sink{nargs: i, idx: idx})
		}
	}
	for _, f := range x.files {
		ast.Inspect(f.ast, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				add(n.Name.Name, n.Type)
			case *ast.InterfaceType:
				for _, m := range n.Methods.List {
					if ft, ok := m.Type.(*ast.FuncType); ok {
						for _, nm := range m.Names {
							add(nm.Name, ft)
						}
					}
				}
			}
			return true
		})
	}
}

// scope is where an expression is read: its file and enclosing function.
type scope struct {
	f  *file
	fn *ast.FuncDecl // nil at package level
}

func (x *extractor) walk(f *file) {
	isFault := strings.HasSuffix(f.pkg.dir, strings.TrimPrefix(faultPath, "/"))
	for _, decl := range f.ast.Decls {
		sc := scope{f: f}
		if fd, ok := decl.(*ast.FuncDecl); ok {
			sc.fn = fd
		}
		ast.Inspect(decl, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			name := calleeName(call)
			switch {
			case !isFault && f.faultAs != "" && isPkgCall(call, f.faultAs, "Permanentf") && len(call.Args) > 0:
				x.formatArg(sc, call.Args[0], call.Args[1:], call)
			case !isFault && f.faultAs != "" && isPkgCall(call, f.faultAs, "Permanent") && len(call.Args) == 1:
				x.add(sc, call, x.errTexts(sc, call.Args[0], call.Pos(), 0))
			default:
				for _, s := range x.sinks[name] {
					if len(call.Args) == s.nargs {
						x.add(sc, call, x.strTexts(sc, call.Args[s.idx], call.Pos(), 0))
					}
				}
			}
			return true
		})
	}
}

// texts is what an expression may say: formats, or why it cannot be read.
type texts struct {
	formats []string
	parts   []string // later parts of a builder's text, each a reason part
	blind   ast.Expr // set when unreadable
	through bool     // passed through (a parameter, err.Error()): checked where it is born
}

func (x *extractor) add(sc scope, at ast.Node, t texts) {
	if t.through {
		return
	}
	if t.blind != nil || (len(t.formats) == 0 && len(t.parts) == 0) {
		e := t.blind
		if e == nil {
			e = at.(ast.Expr)
		}
		x.blind = append(x.blind, Blind{Pos: x.pos(at.Pos()), Expr: x.src(e)})
		return
	}
	pos := x.pos(at.Pos())
	for _, fm := range append(append([]string(nil), t.formats...), t.parts...) {
		k := Key(fm)
		if k == "" || k == "{}" {
			x.blind = append(x.blind, Blind{Pos: pos, Expr: x.src(at.(ast.Expr))})
			continue
		}
		id := k + "\x00" + pos
		if x.seen[id] {
			continue
		}
		x.seen[id] = true
		x.reasons = append(x.reasons, Reason{Key: k, Format: fm, Pos: pos})
	}
}

func (x *extractor) formatArg(sc scope, format ast.Expr, args []ast.Expr, at *ast.CallExpr) {
	lit, ok := stringLit(format)
	if !ok {
		x.add(sc, at, texts{blind: format})
		return
	}
	x.add(sc, at, texts{formats: []string{x.expand(sc, lit, args, at.Pos())}})
}

const maxDepth = 6

// strTexts reads a string expression (a reason argument, a returned string).
func (x *extractor) strTexts(sc scope, e ast.Expr, at token.Pos, depth int) texts {
	if depth > maxDepth {
		return texts{blind: e}
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		if s, ok := stringLit(e); ok {
			if s == "" {
				return texts{} // "no reason": the caller returns an error instead
			}
			return texts{formats: []string{escape(s)}}
		}
	case *ast.ParenExpr:
		return x.strTexts(sc, e.X, at, depth)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			break
		}
		l := x.strTexts(sc, e.X, at, depth+1)
		if l.blind != nil || l.through {
			return l
		}
		r := x.strTexts(sc, e.Y, at, depth+1)
		right := []string{"%v"}
		if r.blind == nil && !r.through && len(r.formats) > 0 {
			right = r.formats
		}
		var out []string
		for _, a := range l.formats {
			for _, b := range right {
				out = append(out, a+b)
			}
		}
		return texts{formats: out}
	case *ast.Ident:
		return x.identTexts(sc, e, at, depth, x.strTexts)
	case *ast.SelectorExpr:
		if p, name, ok := x.pkgValue(sc, e); ok {
			return x.strTexts(scope{f: sc.f, fn: nil}, p.values[name], at, depth+1)
		}
	case *ast.CallExpr:
		if isPkgCall(e, "fmt", "Sprintf") && len(e.Args) > 0 {
			if lit, ok := stringLit(e.Args[0]); ok {
				return texts{formats: []string{x.expand(sc, lit, e.Args[1:], at)}}
			}
			return texts{blind: e}
		}
		if sel, ok := e.Fun.(*ast.SelectorExpr); ok && len(e.Args) == 0 {
			switch sel.Sel.Name {
			case "Error":
				return texts{through: true}
			case "String":
				if id, ok := sel.X.(*ast.Ident); ok && sc.fn != nil {
					if t, ok := x.builder(sc, id.Name); ok {
						return t
					}
				}
			}
		}
		if fns := x.callee(sc, e); len(fns) > 0 {
			return x.returns(fns, 0, depth, x.strTexts)
		}
	}
	return texts{blind: e}
}

// errTexts reads an error expression (fault.Permanent's argument, a
// returned error).
func (x *extractor) errTexts(sc scope, e ast.Expr, at token.Pos, depth int) texts {
	if depth > maxDepth {
		return texts{blind: e}
	}
	switch e := e.(type) {
	case *ast.ParenExpr:
		return x.errTexts(sc, e.X, at, depth)
	case *ast.UnaryExpr:
		if e.Op == token.AND {
			return x.errTexts(sc, e.X, at, depth)
		}
	case *ast.CompositeLit:
		if t, ok := x.errorMethod(sc, e.Type, depth); ok {
			return t
		}
	case *ast.Ident:
		if e.Name == "nil" {
			return texts{}
		}
		return x.identTexts(sc, e, at, depth, x.errTexts)
	case *ast.SelectorExpr:
		if p, name, ok := x.pkgValue(sc, e); ok {
			return x.errTexts(scope{f: sc.f}, p.values[name], at, depth+1)
		}
	case *ast.CallExpr:
		switch {
		case isPkgCall(e, "fmt", "Errorf") && len(e.Args) > 0:
			if lit, ok := stringLit(e.Args[0]); ok {
				return texts{formats: []string{x.expand(sc, lit, e.Args[1:], at)}}
			}
			return texts{blind: e}
		case isPkgCall(e, "errors", "New") && len(e.Args) == 1:
			if lit, ok := stringLit(e.Args[0]); ok {
				return texts{formats: []string{escape(lit)}}
			}
			return texts{blind: e}
		case sc.f.faultAs != "" && isPkgCall(e, sc.f.faultAs, "Permanent") && len(e.Args) == 1:
			return x.errTexts(sc, e.Args[0], at, depth+1)
		case sc.f.faultAs != "" && isPkgCall(e, sc.f.faultAs, "Permanentf") && len(e.Args) > 0:
			if lit, ok := stringLit(e.Args[0]); ok {
				return texts{formats: []string{x.expand(sc, lit, e.Args[1:], at)}}
			}
			return texts{blind: e}
		}
		if fns := x.callee(sc, e); len(fns) > 0 {
			return x.returns(fns, -1, depth, x.errTexts)
		}
	}
	return texts{blind: e}
}

type reader func(scope, ast.Expr, token.Pos, int) texts

// identTexts reads a name: a parameter is passed through; a local variable
// is read from its last assignment before the use (or its declared error
// type); a package-level constant or variable from its value.
func (x *extractor) identTexts(sc scope, id *ast.Ident, at token.Pos, depth int, read reader) texts {
	if sc.fn != nil {
		if isParam(sc.fn, id.Name) {
			return texts{through: true}
		}
		if rhs, typ, ok := x.lastAssign(sc.fn, id.Name, at); ok {
			if rhs != nil {
				return read(sc, rhs, rhs.Pos(), depth+1)
			}
			if t, ok := x.errorMethod(sc, typ, depth); ok {
				return t
			}
			return texts{blind: id}
		}
	}
	if v, ok := sc.f.pkg.values[id.Name]; ok {
		return read(scope{f: sc.f}, v, at, depth+1)
	}
	return texts{blind: id}
}

// lastAssign finds the last assignment to name in fn before at: its value
// (for "a, err := f()" the call), or the declared type of "var name T".
func (x *extractor) lastAssign(fn *ast.FuncDecl, name string, at token.Pos) (rhs ast.Expr, typ ast.Expr, ok bool) {
	var best token.Pos
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		if n == nil || n.Pos() >= at {
			return n != nil && n.Pos() < at
		}
		switch n := n.(type) {
		case *ast.AssignStmt:
			for i, l := range n.Lhs {
				if id, isID := l.(*ast.Ident); isID && id.Name == name && n.Pos() > best {
					best, ok, typ = n.Pos(), true, nil
					switch {
					case len(n.Rhs) == len(n.Lhs):
						rhs = n.Rhs[i]
					case len(n.Rhs) == 1:
						rhs = n.Rhs[0] // a, err := f(): what f returns
					}
				}
			}
		case *ast.ValueSpec:
			for i, nm := range n.Names {
				if nm.Name == name && n.Pos() > best {
					best, ok, rhs, typ = n.Pos(), true, nil, n.Type
					if i < len(n.Values) {
						rhs = n.Values[i]
					}
				}
			}
		}
		return true
	})
	return rhs, typ, ok
}

// builder reads a strings.Builder named name in sc.fn: its first write is
// the reason's start, every later one a part of its own.
func (x *extractor) builder(sc scope, name string) (texts, bool) {
	var t texts
	found := false
	ast.Inspect(sc.fn.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		var text string
		switch {
		case isPkgCall(call, "fmt", "Fprintf") && len(call.Args) > 1 && refersTo(call.Args[0], name):
			lit, ok := stringLit(call.Args[1])
			if !ok {
				t.blind = call
				return false
			}
			text = x.expand(sc, lit, call.Args[2:], call.Pos())
		case isMethodCall(call, name, "WriteString") && len(call.Args) == 1:
			lit, ok := stringLit(call.Args[0])
			if !ok {
				t.blind = call
				return false
			}
			text = escape(lit)
		default:
			return true
		}
		found = true
		if len(t.formats) == 0 {
			t.formats = []string{text}
		} else {
			t.parts = append(t.parts, text)
		}
		return true
	})
	return t, found
}

// returns reads result i (-1: the last) of every return in fns.
func (x *extractor) returns(fns []*ast.FuncDecl, i, depth int, read reader) texts {
	var out texts
	for _, fn := range fns {
		sc := scope{f: x.byNode[fn], fn: fn}
		if fn.Body == nil {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if _, lit := n.(*ast.FuncLit); lit {
				return false
			}
			r, ok := n.(*ast.ReturnStmt)
			if !ok || len(r.Results) == 0 {
				return true
			}
			j := i
			if j < 0 || j >= len(r.Results) {
				j = len(r.Results) - 1
			}
			t := read(sc, r.Results[j], r.Pos(), depth+1)
			if t.blind != nil && out.blind == nil {
				out.blind = t.blind
			}
			out.formats = append(out.formats, t.formats...)
			out.parts = append(out.parts, t.parts...)
			return true
		})
	}
	return out
}

// errorMethod reads the Error method of type expression typ (T, *T, pkg.T)
// when the type is declared in the scanned directories.
func (x *extractor) errorMethod(sc scope, typ ast.Expr, depth int) (texts, bool) {
	if st, ok := typ.(*ast.StarExpr); ok {
		typ = st.X
	}
	p, name := sc.f.pkg, ""
	switch t := typ.(type) {
	case *ast.Ident:
		name = t.Name
	case *ast.SelectorExpr:
		id, ok := t.X.(*ast.Ident)
		if !ok || x.pkgs[sc.f.imports[id.Name]] == nil {
			return texts{}, false
		}
		p, name = x.pkgs[sc.f.imports[id.Name]], t.Sel.Name
	default:
		return texts{}, false
	}
	if !p.types[name] {
		return texts{}, false
	}
	for _, fn := range p.funcs["Error"] {
		if recvType(fn) == name {
			return x.returns([]*ast.FuncDecl{fn}, 0, depth, x.strTexts), true
		}
	}
	return texts{}, false
}

// callee finds the functions a call may run: f() and pkg.F() exactly,
// recv.m() by method name in the same package.
func (x *extractor) callee(sc scope, call *ast.CallExpr) []*ast.FuncDecl {
	switch fn := call.Fun.(type) {
	case *ast.Ident:
		return x.plain(sc.f.pkg.funcs[fn.Name])
	case *ast.SelectorExpr:
		if id, ok := fn.X.(*ast.Ident); ok {
			if dir, imported := sc.f.imports[id.Name]; imported {
				if p := x.pkgs[dir]; p != nil {
					return x.plain(p.funcs[fn.Sel.Name])
				}
				return nil
			}
		}
		var ms []*ast.FuncDecl
		for _, d := range sc.f.pkg.funcs[fn.Sel.Name] {
			if d.Recv != nil {
				ms = append(ms, d)
			}
		}
		return ms
	}
	return nil
}

func (x *extractor) plain(fns []*ast.FuncDecl) []*ast.FuncDecl {
	var out []*ast.FuncDecl
	for _, d := range fns {
		if d.Recv == nil {
			out = append(out, d)
		}
	}
	return out
}

// pkgValue resolves pkg.Name to a package-level value in a scanned package.
func (x *extractor) pkgValue(sc scope, e *ast.SelectorExpr) (*pkg, string, bool) {
	id, ok := e.X.(*ast.Ident)
	if !ok {
		return nil, "", false
	}
	p := x.pkgs[sc.f.imports[id.Name]]
	if p == nil {
		return nil, "", false
	}
	_, ok = p.values[e.Sel.Name]
	return p, e.Sel.Name, ok
}

// expand fills the verbs of format whose argument is a fixed text (a
// constant, a sentinel error, a local variable made from a literal or
// fmt.Sprintf) and leaves the others as verbs.
func (x *extractor) expand(sc scope, format string, args []ast.Expr, at token.Pos) string {
	var b strings.Builder
	arg := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("+-# 0123456789.[]*", format[j]) >= 0 {
			j++
		}
		if j >= len(format) {
			b.WriteString(format[i:])
			break
		}
		verb := format[i : j+1]
		i = j
		if verb == "%%" {
			b.WriteString(verb)
			continue
		}
		if arg < len(args) && (verb == "%s" || verb == "%v" || verb == "%w") {
			if s, ok := x.fixed(sc, args[arg], at); ok {
				b.WriteString(s)
				arg++
				continue
			}
		}
		arg++
		b.WriteString(verb)
	}
	return b.String()
}

// fixed reads an argument that always has the same text, or a format made
// by fmt.Sprintf in the same function; never a call's result.
func (x *extractor) fixed(sc scope, e ast.Expr, at token.Pos) (string, bool) {
	var t texts
	switch e := e.(type) {
	case *ast.BasicLit:
		t = x.strTexts(sc, e, at, maxDepth)
	case *ast.SelectorExpr:
		if p, name, ok := x.pkgValue(sc, e); ok {
			t = x.sentinel(scope{f: sc.f}, p.values[name], at)
		}
	case *ast.Ident:
		if sc.fn != nil {
			if isParam(sc.fn, e.Name) {
				return "", false
			}
			if rhs, _, ok := x.lastAssign(sc.fn, e.Name, at); ok {
				if call, isCall := rhs.(*ast.CallExpr); isCall && isPkgCall(call, "fmt", "Sprintf") {
					t = x.strTexts(sc, rhs, rhs.Pos(), maxDepth-1)
				} else if _, isLit := rhs.(*ast.BasicLit); isLit {
					t = x.strTexts(sc, rhs, rhs.Pos(), maxDepth)
				}
				break
			}
		}
		if v, ok := sc.f.pkg.values[e.Name]; ok {
			t = x.sentinel(scope{f: sc.f}, v, at)
		}
	}
	if t.blind != nil || t.through || len(t.formats) != 1 || len(t.parts) != 0 {
		return "", false
	}
	return t.formats[0], true
}

// sentinel reads a package-level value: a string literal or an error made
// by errors.New or fault.Permanent(errors.New(…)).
func (x *extractor) sentinel(sc scope, v ast.Expr, at token.Pos) texts {
	if _, ok := v.(*ast.BasicLit); ok {
		return x.strTexts(sc, v, at, maxDepth)
	}
	if call, ok := v.(*ast.CallExpr); ok {
		if isPkgCall(call, "errors", "New") || (sc.f.faultAs != "" && isPkgCall(call, sc.f.faultAs, "Permanent")) {
			return x.errTexts(sc, call, at, maxDepth-2)
		}
	}
	return texts{blind: v}
}

func (x *extractor) pos(p token.Pos) string {
	ps := x.fset.Position(p)
	rel, err := filepath.Rel(x.root, ps.Filename)
	if err != nil {
		rel = ps.Filename
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), ps.Line)
}

func (x *extractor) src(e ast.Expr) string {
	start, end := x.fset.Position(e.Pos()), x.fset.Position(e.End())
	b, err := os.ReadFile(start.Filename)
	if err != nil || end.Offset > len(b) {
		return fmt.Sprintf("%T", e)
	}
	return string(b[start.Offset:end.Offset])
}

// Key reduces a format to its fixed leading text: up to the first verb
// once it holds minKeyWords words, with "{}" for each verb passed on the
// way; spaces collapsed, separators trimmed at either end.
func Key(format string) string {
	var b, fixed strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			fixed.WriteByte(c)
			continue
		}
		if i+1 < len(format) && format[i+1] == '%' {
			b.WriteByte('%')
			fixed.WriteByte('%')
			i++
			continue
		}
		if words(fixed.String()) >= minKeyWords {
			break
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("+-# 0123456789.[]*", format[j]) >= 0 {
			j++
		}
		i = j
		b.WriteString("{}")
		fixed.WriteByte(' ')
	}
	k := strings.Join(strings.Fields(b.String()), " ")
	k = strings.TrimLeft(k, ";:, ")
	return strings.TrimRight(k, ";:,( ")
}

// words counts the runs of letters, digits and underscores in s.
func words(s string) int {
	return len(strings.FieldsFunc(s, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}))
}

func escape(s string) string { return strings.ReplaceAll(s, "%", "%%") }

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func isPkgCall(call *ast.CallExpr, pkgName, fn string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != fn {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkgName
}

func isMethodCall(call *ast.CallExpr, recv, method string) bool { return isPkgCall(call, recv, method) }

func calleeName(call *ast.CallExpr) string {
	switch fn := call.Fun.(type) {
	case *ast.Ident:
		return fn.Name
	case *ast.SelectorExpr:
		return fn.Sel.Name
	}
	return ""
}

// refersTo says whether e is name or &name.
func refersTo(e ast.Expr, name string) bool {
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
		e = u.X
	}
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func isParam(fn *ast.FuncDecl, name string) bool {
	for _, fl := range []*ast.FieldList{fn.Recv, fn.Type.Params} {
		if fl == nil {
			continue
		}
		for _, f := range fl.List {
			for _, n := range f.Names {
				if n.Name == name {
					return true
				}
			}
		}
	}
	return false
}

func recvType(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return ""
	}
	t := fn.Recv.List[0].Type
	if st, ok := t.(*ast.StarExpr); ok {
		t = st.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}
