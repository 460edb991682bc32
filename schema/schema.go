// Package schema holds the JSON Schemas (draft 2020-12) of the axarchive format, versions 1 and 2: the event
// and snapshot records of the chunks and the archive manifest. They are the normative description of
// the JSON shapes in SPEC.md; the canonical encoding rules that a schema cannot express (key order, no
// whitespace, string escaping) are in SPEC.md only.
//
// The schema files are embedded and compiled once, on first use, with santhosh-tekuri/jsonschema/v5.
// The compiled schemas are safe for concurrent use.
package schema

import (
	"bytes"
	"cmp"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"github.com/segmentio/encoding/json"
)

// The file names of the schemas, as embedded in FS and as published in the repository's schema/
// directory.
const (
	EventFile    = "event.v1.json"
	SnapshotFile = "snapshot.v1.json"
	ManifestFile = "manifest.v1.json"
	// Format version 2 adds the transactions stream: its manifest and its record.
	ManifestV2File  = "manifest.v2.json"
	TransactionFile = "transaction.v2.json"
)

// base is the URL the schemas' $id values start with; the compiler resolves references between them
// (snapshot.v1.json refers to event.v1.json) against it, never over the network.
const base = "https://github.com/axarchive/axarchive/schema/"

//go:embed *.v1.json *.v2.json
var files embed.FS

// FS returns the embedded schema files.
func FS() fs.FS { return files }

type compiled struct {
	event, snapshot, manifest *jsonschema.Schema
	manifestV2, transaction   *jsonschema.Schema
}

var compile = sync.OnceValues(func() (*compiled, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.LoadURL = func(url string) (io.ReadCloser, error) {
		return nil, fmt.Errorf("schema %s: not embedded (no network access)", url)
	}
	for _, name := range []string{EventFile, SnapshotFile, ManifestFile, ManifestV2File, TransactionFile} {
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(base+name, bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
	}
	var out compiled
	var err error
	if out.event, err = c.Compile(base + EventFile); err != nil {
		return nil, err
	}
	if out.snapshot, err = c.Compile(base + SnapshotFile); err != nil {
		return nil, err
	}
	if out.manifest, err = c.Compile(base + ManifestFile); err != nil {
		return nil, err
	}
	if out.manifestV2, err = c.Compile(base + ManifestV2File); err != nil {
		return nil, err
	}
	if out.transaction, err = c.Compile(base + TransactionFile); err != nil {
		return nil, err
	}
	return &out, nil
})

func must() *compiled {
	c, err := compile()
	if err != nil {
		// The schemas are embedded and covered by tests: failing to compile them is a build defect.
		panic("internal error: compile embedded schemas: " + err.Error())
	}
	return c
}

// Event returns the compiled schema of an event record line.
func Event() *jsonschema.Schema { return must().event }

// Snapshot returns the compiled schema of a snapshot record line.
func Snapshot() *jsonschema.Schema { return must().snapshot }

// Manifest returns the compiled schema of data/manifest.json of format version 1.
func Manifest() *jsonschema.Schema { return must().manifest }

// ManifestVersion returns the compiled schema of data/manifest.json of the given format version (1 or
// 2), or nil for another.
func ManifestVersion(v int64) *jsonschema.Schema {
	switch v {
	case 1:
		return must().manifest
	case 2:
		return must().manifestV2
	}
	return nil
}

// Transaction returns the compiled schema of a transactions record line (format version 2).
func Transaction() *jsonschema.Schema { return must().transaction }

// Validate decodes one JSON document (numbers kept exact) and validates it against s. The error, if
// any, is one line naming the JSON pointer of each offending value.
func Validate(s *jsonschema.Schema, doc []byte) error {
	var v any
	if _, err := json.Parse(doc, &v, json.UseNumber); err != nil {
		return fmt.Errorf("invalid JSON: %v", err)
	}
	return ValidateValue(s, v)
}

// ValidateValue validates an already decoded JSON value (as decoded by encoding/json or
// segmentio/encoding/json with UseNumber) against s. See Validate for the error.
func ValidateValue(s *jsonschema.Schema, v any) error {
	if err := checkNumbers(v, ""); err != nil {
		return err
	}
	err := s.Validate(v)
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return err
	}
	return fmt.Errorf("not valid against %s: %s", strings.TrimSuffix(strings.TrimPrefix(s.Location, base), "#"), describe(ve))
}

// describe flattens a validation error tree into its leaves: "at /a/b: message; at /c: message".
func describe(ve *jsonschema.ValidationError) string {
	seen := map[string]bool{}
	var leaves []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := e.InstanceLocation
			if loc == "" {
				loc = "/"
			}
			s := "at " + loc + ": " + e.Message
			if !seen[s] {
				seen[s] = true
				leaves = append(leaves, s)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.Strings(leaves)
	const max = 5
	if len(leaves) > max {
		leaves = append(leaves[:max], fmt.Sprintf("and %d more", len(leaves)-max))
	}
	return strings.Join(leaves, "; ")
}

// Limits of the numbers handed to the schema library: it turns each into a math/big.Rat, panics on one
// that math/big cannot parse (an exponent of millions) and spends unbounded time and memory on one it can
// but should not (1e-9000000). Every number of this format is an int64 or a short decimal.
const (
	maxNumberLen      = 40
	maxNumberExponent = 400
)

// checkNumbers refuses, naming where it is, a number in v (decoded with UseNumber) beyond those limits.
func checkNumbers(v any, at string) error {
	switch x := v.(type) {
	case json.Number:
		if !saneNumber(string(x)) {
			return fmt.Errorf("at %s: number %.40q is out of range", cmp.Or(at, "/"), string(x))
		}
	case map[string]any:
		for k, e := range x {
			if err := checkNumbers(e, at+"/"+k); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkNumbers(e, at+"/"+strconv.Itoa(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func saneNumber(s string) bool {
	if len(s) > maxNumberLen {
		return false
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		exp, err := strconv.Atoi(s[i+1:])
		return err == nil && exp >= -maxNumberExponent && exp <= maxNumberExponent
	}
	return true
}
