package local

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	mrand "math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	jsonata "github.com/blues/jsonata-go"
	"github.com/blues/jsonata-go/jlib"
	"github.com/blues/jsonata-go/jparse"
	"github.com/blues/jsonata-go/jtypes"
)

// A template is a field value of the definition: a literal JSON value, a
// JSONata expression ("{% ... %}"), or an object or array holding either,
// evaluated recursively.
type template interface {
	eval(ev *evaluator, field string) (any, error)
}

type literal struct{ v any }

func (l literal) eval(*evaluator, string) (any, error) { return l.v, nil }

type objectTemplate struct {
	keys []string
	vals []template
}

func (o *objectTemplate) eval(ev *evaluator, field string) (any, error) {
	out := make(map[string]any, len(o.keys))
	for i, k := range o.keys {
		v, err := o.vals[i].eval(ev, field+"/"+k)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

type arrayTemplate []template

func (a arrayTemplate) eval(ev *evaluator, field string) (any, error) {
	out := make([]any, len(a))
	for i, t := range a {
		v, err := t.eval(ev, fmt.Sprintf("%s/%d", field, i))
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// exprTemplate is a compiled JSONata expression.
type exprTemplate struct {
	src   string
	e     *jsonata.Expr
	hooks *evalHooks
	// refs lists the $names the expression mentions (a superset: names in
	// string literals and function parameters are included; binding those
	// is harmless).
	refs []string
	// functions holds this expression's Step Functions extension functions
	// ($partition, $now, ...), bound to hooks, by name.
	functions map[string]any
	// path is set when the expression is a plain path from a variable
	// ($states.input.items, $cursor.next): the variable name, then the
	// field names. See emptyArray.
	path []string
}

// jsonataMu serializes every JSONata evaluation of this package. jsonata-go
// is not safe for concurrent evaluation: variables are bound on the Expr
// object, and evaluating a function call writes to the callable, including
// the built-in functions that all expressions share (evalFunctionCall calls
// SetName and SetContext on them). Evaluations are short and CPU-bound; the
// concurrency of Map iterations is in the Tasks, which run outside the lock.
var jsonataMu sync.Mutex

// evalHooks carries per-evaluation state into the extension functions that
// need it (the clock for $now and $millis).
type evalHooks struct {
	clock Clock
}

func (h *evalHooks) now() time.Time {
	if h.clock == nil {
		return time.Now()
	}
	return h.clock.Now()
}

// isExpression reports whether a string is a JSONata expression: it starts
// with "{%" and ends with "%}", with nothing outside the braces.
func isExpression(s string) bool {
	return len(s) >= 4 && strings.HasPrefix(s, "{%") && strings.HasSuffix(s, "%}")
}

func compileExpression(s string) (*exprTemplate, error) {
	src := strings.TrimSpace(s[2 : len(s)-2])
	if src == "" {
		return nil, errors.New("empty JSONata expression")
	}
	e, err := jsonata.Compile(src)
	if err != nil {
		return nil, err
	}
	x := &exprTemplate{src: src, e: e, hooks: &evalHooks{}, functions: map[string]any{}, path: plainPath(src)}
	seen := map[string]bool{}
	exts := extensions(x.hooks)
	for _, m := range dollarName.FindAllStringSubmatch(src, -1) {
		name := m[1]
		if seen[name] {
			continue
		}
		seen[name] = true
		x.refs = append(x.refs, name)
		if ext, ok := exts[name]; ok {
			fn, err := callable(name, &ext)
			if err != nil {
				return nil, err
			}
			x.functions[name] = fn
		}
	}
	return x, nil
}

var dollarName = regexp.MustCompile(`\$([\p{L}_][\p{L}\p{N}_]*)`)

// callable returns the JSONata function value named name: an extension when
// ext is given, else the jsonata-go built-in (nil if there is none).
// Variables and functions share one namespace in JSONata; these values are
// what an expression binds to a name that no variable holds.
func callable(name string, ext *jsonata.Extension) (any, error) {
	e, err := jsonata.Compile("$" + name)
	if err != nil {
		return nil, err
	}
	if ext != nil {
		if err := e.RegisterExts(map[string]jsonata.Extension{name: *ext}); err != nil {
			return nil, fmt.Errorf("register JSONata function $%s: %w", name, err)
		}
	}
	fn, err := e.Eval(nil)
	if err != nil {
		return nil, nil
	}
	return fn, nil
}

var (
	builtinsMu sync.Mutex
	builtins   = map[string]any{}
)

// builtin returns the jsonata-go built-in function called name, or nil.
func builtin(name string) any {
	builtinsMu.Lock()
	defer builtinsMu.Unlock()
	if fn, ok := builtins[name]; ok {
		return fn
	}
	fn, _ := callable(name, nil)
	builtins[name] = fn
	return fn
}

// plainPath returns the variable and field names of an expression that is
// just a path from a variable, such as $states.result.Payload.items.
func plainPath(src string) []string {
	node, err := jparse.Parse(src)
	if err != nil {
		return nil
	}
	if v, ok := node.(*jparse.VariableNode); ok {
		return []string{v.Name}
	}
	p, ok := node.(*jparse.PathNode)
	if !ok || p.KeepArrays || len(p.Steps) < 2 {
		return nil
	}
	v, ok := p.Steps[0].(*jparse.VariableNode)
	if !ok {
		return nil
	}
	out := []string{v.Name}
	for _, step := range p.Steps[1:] {
		n, ok := step.(*jparse.NameNode)
		if !ok {
			return nil
		}
		out = append(out, n.Value)
	}
	return out
}

// emptyArray works around a divergence of jsonata-go from JSONata: a path
// whose value is an empty array ($states.input.items with "items": [])
// evaluates to undefined in jsonata-go but to [] in JSONata (and in Step
// Functions). When a plain-path expression yields undefined, the path is
// followed here and an empty array found at its end is returned.
func (x *exprTemplate) emptyArray(ev *evaluator) bool {
	if len(x.path) < 2 {
		return false
	}
	var v any
	if x.path[0] == "states" {
		v = ev.states
	} else if found, ok := ev.vars.lookup(x.path[0]); ok {
		v = found
	}
	for _, name := range x.path[1:] {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		v = m[name]
	}
	a, ok := v.([]any)
	return ok && len(a) == 0
}

// evalError is a failed evaluation: the expression, the field it sits in and
// what went wrong. It becomes States.QueryEvaluationError.
type evalError struct {
	field     string
	expr      string
	undefined bool
	msg       string
}

func (e *evalError) Error() string {
	if e.expr == "" {
		return fmt.Sprintf("the field '%s' %s", e.field, e.msg)
	}
	if e.undefined {
		return fmt.Sprintf("The JSONata expression '%s' specified for the field '%s' returned nothing (undefined).", e.expr, e.field)
	}
	return fmt.Sprintf("The JSONata expression '%s' specified for the field '%s' threw an error: %s", e.expr, e.field, e.msg)
}

func (x *exprTemplate) eval(ev *evaluator, field string) (any, error) {
	// Bind every name the expression mentions, on every evaluation, so that
	// no binding of a previous evaluation remains: $states, the workflow
	// variables in scope, the extension functions. A workflow variable that
	// is not set in this scope is undefined, unless a function has its name
	// (a definition may have a variable called count and still call $count
	// where the variable is not set).
	vars := make(map[string]any, len(x.refs))
	for _, name := range x.refs {
		switch {
		case name == "states":
			vars[name] = ev.states
		case ev.isVariable(name):
			if v, ok := ev.vars.lookup(name); ok {
				vars[name] = v
			} else if fn, ok := x.functions[name]; ok {
				vars[name] = fn
			} else if fn := builtin(name); fn != nil {
				vars[name] = fn
			} else {
				vars[name] = nil // undefined
			}
		default:
			if fn, ok := x.functions[name]; ok {
				vars[name] = fn
			}
		}
	}
	res, err := x.evalLocked(ev.clock, vars)
	if errors.Is(err, jsonata.ErrUndefined) {
		if x.emptyArray(ev) {
			return []any{}, nil
		}
		return nil, &evalError{field: field, expr: x.src, undefined: true}
	}
	if err != nil {
		return nil, &evalError{field: field, expr: x.src, msg: err.Error()}
	}
	out, err := normalize(res)
	if err != nil {
		return nil, &evalError{field: field, expr: x.src, msg: err.Error()}
	}
	return out, nil
}

func (x *exprTemplate) evalLocked(clock Clock, vars map[string]any) (any, error) {
	jsonataMu.Lock()
	defer jsonataMu.Unlock()
	x.hooks.clock = clock
	if err := x.e.RegisterVars(vars); err != nil {
		return nil, err
	}
	return x.e.Eval(nil)
}

// evaluator is what an evaluation sees: the variables in scope, the names of
// all variables the definition can assign, the $states object and the clock.
type evaluator struct {
	names  map[string]bool
	vars   *scope
	states map[string]any
	clock  Clock
}

func (ev *evaluator) isVariable(name string) bool { return ev.names[name] }

// compileTemplate turns a JSON field value into a template. Strings of the
// form "{% expr %}" become expressions, everything else is literal.
func compileTemplate(raw any) (template, error) {
	switch t := raw.(type) {
	case string:
		if isExpression(t) {
			return compileExpression(t)
		}
		return literal{t}, nil
	case map[string]any:
		o := &objectTemplate{}
		lit := true
		for _, k := range sortedKeys(t) {
			v, err := compileTemplate(t[k])
			if err != nil {
				return nil, err
			}
			if _, ok := v.(literal); !ok {
				lit = false
			}
			o.keys = append(o.keys, k)
			o.vals = append(o.vals, v)
		}
		if lit {
			return literal{fromJSON(raw)}, nil
		}
		return o, nil
	case []any:
		a := make(arrayTemplate, len(t))
		lit := true
		for i, x := range t {
			v, err := compileTemplate(x)
			if err != nil {
				return nil, err
			}
			if _, ok := v.(literal); !ok {
				lit = false
			}
			a[i] = v
		}
		if lit {
			return literal{fromJSON(raw)}, nil
		}
		return a, nil
	default:
		return literal{fromJSON(raw)}, nil
	}
}

// extensions are the functions Step Functions adds to JSONata, plus $now and
// $millis bound to the execution's clock. $eval does not exist in jsonata-go,
// which matches Step Functions (it is not available there either).
func extensions(h *evalHooks) map[string]jsonata.Extension {
	firstUndefined := jtypes.ArgUndefined(0)
	return map[string]jsonata.Extension{
		"partition": {Func: fnPartition, UndefinedHandler: firstUndefined},
		"range":     {Func: fnRange},
		"hash":      {Func: fnHash, UndefinedHandler: firstUndefined},
		"random":    {Func: fnRandom},
		"uuid":      {Func: fnUUID},
		"parse":     {Func: fnParse, UndefinedHandler: firstUndefined},
		"now": {Func: func(picture, tz jtypes.OptionalString) (string, error) {
			return jlib.FromMillis(h.now().UnixMilli(), picture, tz)
		}},
		"millis": {Func: func() int64 { return h.now().UnixMilli() }},
	}
}

func argValue(v reflect.Value) (any, error) {
	if !v.IsValid() {
		return nullValue, nil
	}
	return normalize(v.Interface())
}

func argInteger(fn string, pos int, v reflect.Value) (int64, error) {
	x, err := argValue(v)
	if err != nil {
		return 0, err
	}
	n, ok := asInteger(x)
	if !ok {
		return 0, fmt.Errorf("argument %d of function %s must be an integer", pos, fn)
	}
	return n, nil
}

// fnPartition is $partition(array, size): the array cut into chunks of size
// items, the last one possibly shorter. A non-array value is treated as a
// one-item array, as JSONata does for array parameters.
func fnPartition(arr reflect.Value, size reflect.Value) (any, error) {
	v, err := argValue(arr)
	if err != nil {
		return nil, err
	}
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	n, err := argInteger("partition", 2, size)
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, errors.New("argument 2 of function partition must be a positive integer")
	}
	out := make([]any, 0, (len(items)+int(n)-1)/int(n))
	for i := 0; i < len(items); i += int(n) {
		end := min(i+int(n), len(items))
		chunk := make([]any, end-i)
		copy(chunk, items[i:end])
		out = append(out, chunk)
	}
	return out, nil
}

// maxRangeItems bounds $range so that a typo cannot allocate without limit;
// a million numbers are far beyond the 256 KiB payload quota anyway.
const maxRangeItems = 1000000

// fnRange is $range(start, end, step): integers from start to end, both
// included, stepping by step (default 1; negative steps count down).
func fnRange(start, end reflect.Value, step jtypes.OptionalValue) (any, error) {
	a, err := argInteger("range", 1, start)
	if err != nil {
		return nil, err
	}
	b, err := argInteger("range", 2, end)
	if err != nil {
		return nil, err
	}
	s := int64(1)
	if step.IsSet() {
		if s, err = argInteger("range", 3, step.Value); err != nil {
			return nil, err
		}
	}
	if s == 0 {
		return nil, errors.New("argument 3 of function range must not be zero")
	}
	out := []any{}
	for i := a; (s > 0 && i <= b) || (s < 0 && i >= b); i += s {
		if len(out) == maxRangeItems {
			return nil, fmt.Errorf("function range would return more than %d items", maxRangeItems)
		}
		out = append(out, float64(i))
	}
	return out, nil
}

// fnHash is $hash(value, algorithm): the lowercase hex digest of a string
// with MD5, SHA-1, SHA-256, SHA-384 or SHA-512.
func fnHash(value reflect.Value, algorithm reflect.Value) (any, error) {
	v, err := argValue(value)
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, errors.New("argument 1 of function hash must be a string")
	}
	a, _ := argValue(algorithm)
	name, _ := a.(string)
	var h hash.Hash
	switch name {
	case "MD5":
		h = md5.New()
	case "SHA-1":
		h = sha1.New()
	case "SHA-256":
		h = sha256.New()
	case "SHA-384":
		h = sha512.New384()
	case "SHA-512":
		h = sha512.New()
	default:
		return nil, fmt.Errorf("argument 2 of function hash must be one of MD5, SHA-1, SHA-256, SHA-384, SHA-512, not %q", name)
	}
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fnRandom is $random() or $random(seed): a number in [0, 1). With a seed
// the result is deterministic: the same seed gives the same number.
func fnRandom(seed jtypes.OptionalValue) (any, error) {
	if !seed.IsSet() || !seed.Value.IsValid() {
		return mrand.Float64(), nil
	}
	v, err := argValue(seed.Value)
	if err != nil {
		return nil, err
	}
	f, ok := v.(float64)
	if !ok {
		return nil, errors.New("argument 1 of function random must be a number")
	}
	r := mrand.New(mrand.NewPCG(math.Float64bits(f), 0x5f3759df))
	return r.Float64(), nil
}

// fnUUID is $uuid(): a random version 4 UUID.
func fnUUID() (any, error) { return newUUID(), nil }

// fnParse is $parse(json): the JSON text parsed into a value.
func fnParse(text reflect.Value) (any, error) {
	v, err := argValue(text)
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, errors.New("argument 1 of function parse must be a string")
	}
	out, err := decodeJSON([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("function parse: invalid JSON: %w", err)
	}
	return out, nil
}

// newUUID returns a random version 4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
