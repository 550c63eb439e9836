package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
)

// Values flowing through an execution are plain Go values in the shape
// encoding/json produces (map[string]any, []any, string, float64, bool), with
// one difference: JSON null is represented by nullValue, a typed nil pointer.
// jsonata-go treats a nil interface as "undefined" (a missing field), so a
// null read from the input would silently disappear; a nil *any is what
// jsonata-go itself uses for null. encoding/json marshals nullValue as null.
//
// Values are never mutated once built, so they are shared freely between
// states, iterations and the JSONata evaluator.

// nullValue is JSON null.
var nullValue = (*any)(nil)

// isNull reports whether v is JSON null in any of the representations that can
// reach us (nil interface, nil *any).
func isNull(v any) bool {
	if v == nil {
		return true
	}
	p, ok := v.(*any)
	return ok && p == nil
}

// decodeJSON parses a JSON document into the internal representation.
func decodeJSON(data []byte) (any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return fromJSON(v), nil
}

// fromJSON converts a value produced by encoding/json (nil for null) into the
// internal representation.
func fromJSON(v any) any {
	switch t := v.(type) {
	case nil:
		return nullValue
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = fromJSON(x)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, x := range t {
			a[i] = fromJSON(x)
		}
		return a
	default:
		return v
	}
}

// encodeJSON renders a value as compact JSON without HTML escaping, as Step
// Functions shows it.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// encodeString is encodeJSON for event details, which carry JSON as strings.
func encodeString(v any) string {
	b, err := encodeJSON(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// normalize converts a JSONata result into the internal representation:
// integers become float64, typed slices and maps become []any and
// map[string]any, nil becomes nullValue. Values already in the internal form
// are returned without copying. Functions, NaN and infinities cannot be
// represented in JSON and yield an error.
func normalize(v any) (any, error) {
	out, _, err := normalizeChanged(v)
	return out, err
}

func normalizeChanged(v any) (any, bool, error) {
	switch t := v.(type) {
	case nil:
		return nullValue, true, nil
	case *any:
		if t == nil {
			return v, false, nil
		}
		out, _, err := normalizeChanged(*t)
		return out, true, err
	case string, bool:
		return v, false, nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, false, fmt.Errorf("the result %v is not a valid JSON number", t)
		}
		return v, false, nil
	case float32:
		return normalizeChanged(float64(t))
	case int:
		return float64(t), true, nil
	case int8:
		return float64(t), true, nil
	case int16:
		return float64(t), true, nil
	case int32:
		return float64(t), true, nil
	case int64:
		return float64(t), true, nil
	case uint:
		return float64(t), true, nil
	case uint8:
		return float64(t), true, nil
	case uint16:
		return float64(t), true, nil
	case uint32:
		return float64(t), true, nil
	case uint64:
		return float64(t), true, nil
	case map[string]any:
		var out map[string]any
		for k, x := range t {
			nx, changed, err := normalizeChanged(x)
			if err != nil {
				return nil, false, err
			}
			if changed && out == nil {
				out = make(map[string]any, len(t))
				for k2, x2 := range t {
					out[k2] = x2
				}
			}
			if out != nil {
				out[k] = nx
			}
		}
		if out == nil {
			return v, false, nil
		}
		return out, true, nil
	case []any:
		var out []any
		for i, x := range t {
			nx, changed, err := normalizeChanged(x)
			if err != nil {
				return nil, false, err
			}
			if changed && out == nil {
				out = make([]any, len(t))
				copy(out, t)
			}
			if out != nil {
				out[i] = nx
			}
		}
		if out == nil {
			return v, false, nil
		}
		return out, true, nil
	}
	return normalizeReflect(reflect.ValueOf(v))
}

// normalizeReflect handles the remaining shapes jsonata-go can return
// ([]string, []float64, map[string]string, []map[string]any, ...).
func normalizeReflect(rv reflect.Value) (any, bool, error) {
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			x, _, err := normalizeChanged(rv.Index(i).Interface())
			if err != nil {
				return nil, false, err
			}
			out[i] = x
		}
		return out, true, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		out := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			x, _, err := normalizeChanged(iter.Value().Interface())
			if err != nil {
				return nil, false, err
			}
			out[iter.Key().String()] = x
		}
		return out, true, nil
	case reflect.Interface, reflect.Pointer:
		if rv.IsNil() {
			return nullValue, true, nil
		}
		return normalizeChanged(rv.Elem().Interface())
	case reflect.Func:
		return nil, false, fmt.Errorf("the result is a function, which is not a JSON value")
	}
	// Anything else (structs, callables): fall back to a JSON round trip.
	b, err := json.Marshal(rv.Interface())
	if err != nil {
		return nil, false, fmt.Errorf("the result is not a JSON value: %w", err)
	}
	out, err := decodeJSON(b)
	if err != nil {
		return nil, false, fmt.Errorf("the result is not a JSON value: %w", err)
	}
	return out, true, nil
}

// typeName names a value's JSON type for error messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	if isNull(v) {
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// asInteger converts a number that holds an integral value.
func asInteger(v any) (int64, bool) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// sortedKeys returns a map's keys in order, for deterministic evaluation.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// MaxPayloadBytes is the Step Functions quota on the size of an execution
// input, a state's input or output, a task result and the values one Assign
// sets: 256 KiB of UTF-8 JSON.
const MaxPayloadBytes = 256 * 1024

// jsonSize returns the size of v encoded as compact JSON, or stops early and
// reports false once it is larger than limit.
func jsonSize(v any, limit int) (int, bool) {
	n := 0
	var walk func(v any) bool
	walk = func(v any) bool {
		switch t := v.(type) {
		case string:
			n += stringSize(t)
		case float64:
			n += len(strconv.FormatFloat(t, 'g', -1, 64))
		case bool:
			if t {
				n += 4
			} else {
				n += 5
			}
		case map[string]any:
			n += 2
			first := true
			for k, x := range t {
				if !first {
					n++
				}
				first = false
				n += stringSize(k) + 1
				if !walk(x) {
					return false
				}
			}
		case []any:
			n += 2
			for i, x := range t {
				if i > 0 {
					n++
				}
				if !walk(x) {
					return false
				}
			}
		default:
			n += 4 // null
		}
		return n <= limit
	}
	ok := walk(v)
	return n, ok
}

func stringSize(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}
