package schema

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"github.com/segmentio/encoding/json"
)

// RecordValidator validates record lines against the event or snapshot schema, fast enough to run on
// every record of an archive.
//
// jsonschema/v5 spends tens of microseconds and hundreds of allocations on one record, so a validator
// does not hand it each record: it hands it the record's projection, a copy in which every value that
// the schema constrains only by its type or by one pattern is replaced by a fixed representative of the
// same validity (strings of unconstrained members become "", strings that match their member's pattern
// become a fixed string that matches it, integers within their member's bounds become 0, and metadata
// entries whose projections are equal are kept once). A record is valid exactly when its projection is
// (the schema constrains nothing else, which TestProjectionAssumptions checks against the compiled
// schema), and an archive's records have few distinct projections, so each is validated once and the
// outcome cached. The patterns used are the compiled schema's own.
//
// A RecordValidator is safe for concurrent use.
type RecordValidator struct {
	schema   *jsonschema.Schema
	position string // "token" or "position"
	re       patterns

	mu    sync.RWMutex
	cache map[string]bool
	full  atomic.Bool
	Hits  atomic.Int64 // projections found in the cache
	Miss  atomic.Int64 // projections validated
}

type patterns struct {
	time, base64, number, double *regexp.Regexp
}

// Fixed representatives of the patterned strings; init checks that each matches its pattern.
const (
	exTime   = "2000-01-01T00:00:00.000Z"
	exBase64 = "AA=="
	exNumber = "0"
	exDouble = "0"
)

// maxCached bounds the cache; beyond it, projections are validated without being remembered.
const maxCached = 1 << 14

// NewEventValidator returns a validator of event lines.
func NewEventValidator() *RecordValidator { return newRecordValidator(Event(), "token") }

// NewSnapshotValidator returns a validator of snapshot lines.
func NewSnapshotValidator() *RecordValidator { return newRecordValidator(Snapshot(), "position") }

func newRecordValidator(s *jsonschema.Schema, position string) *RecordValidator {
	return &RecordValidator{schema: s, position: position, re: recordPatterns(s), cache: map[string]bool{}}
}

// resolve follows $ref chains.
func resolve(s *jsonschema.Schema) *jsonschema.Schema {
	for s != nil && s.Ref != nil {
		s = s.Ref
	}
	return s
}

func recordPatterns(s *jsonschema.Schema) patterns {
	s = resolve(s)
	object := resolve(s.Properties["payload"])
	meta := resolve(resolve(s.Properties["metadata"]).Items2020)
	p := patterns{
		time:   resolve(s.Properties["time"]).Pattern,
		base64: resolve(s.Properties["extra"]).Pattern,
		number: resolve(meta.Properties["number"]).Pattern,
		double: resolve(meta.Properties["double"]).Pattern,
	}
	if p.time == nil || p.base64 == nil || p.number == nil || p.double == nil || object == nil ||
		!p.time.MatchString(exTime) || !p.base64.MatchString(exBase64) || !p.number.MatchString(exNumber) || !p.double.MatchString(exDouble) {
		panic("internal error: the record schema does not have the patterns its validator relies on")
	}
	return p
}

// Patterns returns the schema's patterns that a projection depends on: of the time member, of base64
// strings (payload data with encoding base64, extra), of metadata numbers and of metadata doubles.
func (v *RecordValidator) Patterns() (time, base64, number, double *regexp.Regexp) {
	return v.re.time, v.re.base64, v.re.number, v.re.double
}

// Exemplars are the fixed strings a projection puts in place of matching patterned strings.
const (
	ExemplarTime   = exTime
	ExemplarBase64 = exBase64
	ExemplarNumber = exNumber
	ExemplarDouble = exDouble
)

// ValidateProjection reports whether a record whose projection, as JSON, is p is valid. The caller
// computes p without decoding the record (as package archive does for canonical lines); it must be
// the JSON of exactly the projection described at RecordValidator.
func (v *RecordValidator) ValidateProjection(p []byte) bool {
	v.mu.RLock()
	valid, ok := v.cache[string(p)]
	v.mu.RUnlock()
	if ok {
		v.Hits.Add(1)
		return valid
	}
	v.Miss.Add(1)
	var doc any
	if _, err := json.Parse(p, &doc, json.UseNumber); err != nil {
		return false
	}
	valid = v.schema.Validate(doc) == nil
	v.remember(string(p), valid)
	return valid
}

func (v *RecordValidator) remember(key string, valid bool) {
	if v.full.Load() {
		return
	}
	v.mu.Lock()
	if len(v.cache) < maxCached {
		v.cache[key] = valid
	} else {
		v.full.Store(true)
	}
	v.mu.Unlock()
}

// Project returns the projection of a decoded record (see RecordValidator), for tests that compare it
// with projections computed otherwise.
func (v *RecordValidator) Project(doc any) any { return v.project(doc) }

// ValidateLine decodes one record line (with or without its LF) and validates it.
func (v *RecordValidator) ValidateLine(line []byte) error {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	var doc any
	if _, err := json.Parse(line, &doc, json.UseNumber|json.DontCopyString|json.DontCopyNumber); err != nil {
		return fmt.Errorf("invalid JSON: %v", err)
	}
	return v.Validate(doc)
}

// Validate validates a decoded record (numbers as json.Number). On failure it validates the record
// itself, so that the error names the real values.
func (v *RecordValidator) Validate(doc any) error {
	if err := checkNumbers(doc, ""); err != nil {
		return err
	}
	p := v.project(doc)
	key, err := json.Marshal(p)
	if err != nil {
		return ValidateValue(v.schema, doc)
	}
	v.mu.RLock()
	valid, ok := v.cache[string(key)]
	v.mu.RUnlock()
	if ok {
		v.Hits.Add(1)
	} else {
		v.Miss.Add(1)
		valid = v.schema.Validate(p) == nil
		v.remember(string(key), valid)
	}
	if valid {
		return nil
	}
	if err := ValidateValue(v.schema, doc); err != nil {
		return err
	}
	// Unreachable if the projection is sound; be strict rather than silent.
	return fmt.Errorf("not valid against %s (projection)", v.schema.Location)
}

// project returns the projection of a record (see RecordValidator). Values of unexpected types are
// kept as they are: they make the record invalid whatever they hold.
func (v *RecordValidator) project(doc any) any {
	m, ok := doc.(map[string]any)
	if !ok {
		return doc
	}
	out := make(map[string]any, len(m))
	for k, x := range m {
		switch k {
		case v.position:
			out[k] = projectInt(x, 0)
		case "sequence", "timestamp":
			out[k] = projectInt(x, -1<<63)
		case "messageId", "aggregateId", "aggregateType":
			out[k] = projectString(x)
		case "time":
			out[k] = projectPattern(x, v.re.time, exTime)
		case "extra":
			out[k] = projectPattern(x, v.re.base64, exBase64)
		case "payload":
			out[k] = v.projectObject(x)
		case "metadata":
			out[k] = v.projectMetadata(x)
		default: // "snapshot" (a const) and members the schema does not allow
			out[k] = x
		}
	}
	return out
}

func projectString(x any) any {
	if _, ok := x.(string); ok {
		return ""
	}
	return x
}

func projectPattern(x any, re *regexp.Regexp, ex string) any {
	if s, ok := x.(string); ok && re.MatchString(s) {
		return ex
	}
	return x
}

// projectInt maps an integer within min..MaxInt64 to 0 (the bounds of the schema's integers are those
// of int64, with min 0 for tokens and positions).
func projectInt(x any, min int64) any {
	if n, ok := x.(json.Number); ok {
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil && i >= min {
			return json.Number("0")
		}
	}
	return x
}

func (v *RecordValidator) projectObject(x any) any {
	m, ok := x.(map[string]any)
	if !ok {
		return x
	}
	out := make(map[string]any, len(m))
	enc, _ := m["encoding"].(string)
	for k, y := range m {
		switch k {
		case "type", "revision":
			out[k] = projectString(y)
		case "data":
			switch enc {
			case "text":
				out[k] = projectString(y)
			case "base64":
				out[k] = projectPattern(y, v.re.base64, exBase64)
			default:
				out[k] = y
			}
		default: // "encoding" (an enum) and members the schema does not allow
			out[k] = y
		}
	}
	return out
}

func (v *RecordValidator) projectMetadata(x any) any {
	list, ok := x.([]any)
	if !ok {
		return x
	}
	var out []any
	var seen []string
	for _, e := range list {
		p := v.projectMeta(e)
		key, err := json.Marshal(p)
		if err != nil {
			return x
		}
		if !slices.Contains(seen, string(key)) {
			seen = append(seen, string(key))
			out = append(out, p)
		}
	}
	// Order does not matter to the schema; sorting makes equal sets one cache entry.
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case seen[a] < seen[b]:
			return -1
		case seen[a] > seen[b]:
			return 1
		}
		return 0
	})
	sorted := make([]any, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	if sorted == nil {
		sorted = []any{}
	}
	return sorted
}

func (v *RecordValidator) projectMeta(x any) any {
	m, ok := x.(map[string]any)
	if !ok {
		return x
	}
	out := make(map[string]any, len(m))
	for k, y := range m {
		switch k {
		case "key", "text":
			out[k] = projectString(y)
		case "number":
			out[k] = projectPattern(y, v.re.number, exNumber)
		case "double":
			out[k] = projectPattern(y, v.re.double, exDouble)
		case "bytes":
			out[k] = v.projectObject(y)
		default: // "boolean", "none" (a const) and members the schema does not allow
			out[k] = y
		}
	}
	return out
}
