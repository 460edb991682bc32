package schema

import (
	"fmt"
	"math/big"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"github.com/segmentio/encoding/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompile(t *testing.T) {
	_, err := compile()
	require.NoError(t, err)
	for _, name := range []string{EventFile, SnapshotFile, ManifestFile} {
		b, err := files.ReadFile(name)
		require.NoError(t, err)
		assert.True(t, json.Valid(b), name)
	}
}

const (
	goodEvent    = `{"token":3,"messageId":"m","aggregateId":"a","aggregateType":"A","sequence":0,"timestamp":1,"time":"1970-01-01T00:00:00.001Z","payload":{"type":"T","revision":"","encoding":"base64","data":"AP8="},"metadata":[{"key":"k","text":"v"},{"key":"n","number":"-9223372036854775808"},{"key":"d","double":"NaN(0x7ff0000000000001)"},{"key":"b","boolean":false},{"key":"x","bytes":{"type":"","revision":"","encoding":"text","data":""}},{"key":"z","none":true}],"snapshot":true,"extra":"eAE="}`
	goodSnapshot = `{"position":0,"messageId":"","timestamp":-62135596800001}`
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		schema func() *RecordValidator
		line   string
		want   string // "" for valid, else a piece of the error
	}{
		{"event", NewEventValidator, goodEvent, ""},
		{"snapshot", NewSnapshotValidator, goodSnapshot, ""},
		{"event as snapshot", NewSnapshotValidator, goodEvent, "position"},
		{"negative token", NewEventValidator, `{"token":-1,"messageId":"","timestamp":0}`, "/token"},
		{"token too large", NewEventValidator, `{"token":9223372036854775808,"messageId":"","timestamp":0}`, "/token"},
		{"message id not a string", NewEventValidator, `{"token":1,"messageId":1,"timestamp":0}`, "/messageId"},
		{"missing timestamp", NewEventValidator, `{"token":1,"messageId":""}`, "timestamp"},
		{"aggregate id alone", NewEventValidator, `{"token":1,"messageId":"","aggregateId":"a","timestamp":0}`, "aggregateType"},
		{"bad time", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"time":"1970-01-01T00:00:00Z"}`, "/time"},
		{"bad base64", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"payload":{"type":"","revision":"","encoding":"base64","data":"A"}}`, "/payload/data"},
		{"text data is free", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"payload":{"type":"","revision":"","encoding":"text","data":"A"}}`, ""},
		{"unknown encoding", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"payload":{"type":"","revision":"","encoding":"hex","data":"00"}}`, "/payload/encoding"},
		{"two value members", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"metadata":[{"key":"k","text":"a","none":true}]}`, "/metadata/0"},
		{"no value member", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"metadata":[{"key":"k"}]}`, "/metadata/0"},
		{"number with plus", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"metadata":[{"key":"k","number":"+1"}]}`, "/metadata/0/number"},
		{"double not decimal", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"metadata":[{"key":"k","double":"0x1p-2"}]}`, "/metadata/0/double"},
		{"empty metadata", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"metadata":[]}`, "/metadata"},
		{"snapshot false", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"snapshot":false}`, "/snapshot"},
		{"unknown member", NewEventValidator, `{"token":1,"messageId":"","timestamp":0,"x":1}`, "x"},
		{"not JSON", NewEventValidator, `{"token":1,`, "invalid JSON"},
		{"not an object", NewEventValidator, `[1]`, "expected object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.schema()
			for i := 0; i < 2; i++ { // the second time from the cache
				err := v.ValidateLine([]byte(tc.line))
				if tc.want == "" {
					require.NoError(t, err)
				} else {
					require.Error(t, err)
					assert.Contains(t, err.Error(), tc.want)
				}
			}
		})
	}
}

// keywords lists the validation keywords a compiled schema uses (after following $ref).
func keywords(s *jsonschema.Schema) []string {
	s = resolve(s)
	var k []string
	add := func(cond bool, name string) {
		if cond {
			k = append(k, name)
		}
	}
	add(s.Format != "", "format")
	add(s.Always != nil, "always")
	add(s.RecursiveRef != nil || s.DynamicRef != nil, "dynamicRef")
	add(len(s.Types) > 0, "type="+strings.Join(s.Types, "|"))
	add(len(s.Constant) > 0, "const")
	add(len(s.Enum) > 0, "enum")
	add(s.Not != nil || len(s.AllOf) > 0 || len(s.AnyOf) > 0 || len(s.OneOf) > 0, "combinator")
	add(s.If != nil, "if")
	add(s.MinProperties != -1, "minProperties")
	add(s.MaxProperties != -1, "maxProperties")
	add(len(s.Required) > 0, "required")
	add(len(s.Properties) > 0, "properties")
	add(s.PropertyNames != nil || len(s.PatternProperties) > 0 || s.UnevaluatedProperties != nil || len(s.Dependencies) > 0 || len(s.DependentSchemas) > 0, "otherObject")
	add(s.AdditionalProperties != nil, fmt.Sprintf("additionalProperties=%v", s.AdditionalProperties))
	add(len(s.DependentRequired) > 0, "dependentRequired")
	add(s.MinItems != -1, "minItems")
	add(s.MaxItems != -1 || s.UniqueItems || s.Items != nil || s.AdditionalItems != nil || len(s.PrefixItems) > 0 || s.Contains != nil || s.UnevaluatedItems != nil, "otherArray")
	add(s.Items2020 != nil, "items")
	add(s.MinLength != -1 || s.MaxLength != -1 || s.ContentEncoding != "" || s.ContentMediaType != "" || s.ContentSchema != nil, "otherString")
	add(s.Pattern != nil, "pattern")
	add(s.ExclusiveMinimum != nil || s.ExclusiveMaximum != nil || s.MultipleOf != nil, "otherNumber")
	add(s.Minimum != nil, "minimum="+ratString(s.Minimum))
	add(s.Maximum != nil, "maximum="+ratString(s.Maximum))
	add(len(s.Extensions) > 0, "extensions")
	return k
}

func ratString(r *big.Rat) string {
	if r == nil {
		return ""
	}
	return r.RatString()
}

// TestProjectionAssumptions checks that the compiled schemas constrain exactly what the projection of
// RecordValidator assumes, member by member: if a schema change adds a constraint the projection would
// hide, this test fails.
func TestProjectionAssumptions(t *testing.T) {
	const i64min, i64max = "-9223372036854775808", "9223372036854775807"
	str := []string{"type=string"}
	patterned := []string{"type=string", "pattern"}
	for _, tc := range []struct {
		schema   *jsonschema.Schema
		position string
	}{{Event(), "token"}, {Snapshot(), "position"}} {
		root := resolve(tc.schema)
		assert.Equal(t, []string{"type=object", "required", "properties", "additionalProperties=false", "dependentRequired"}, keywords(root))
		names := []string{}
		for n := range root.Properties {
			names = append(names, n)
		}
		sort.Strings(names)
		want := []string{"aggregateId", "aggregateType", "extra", "messageId", "metadata", "payload", tc.position, "sequence", "snapshot", "time", "timestamp"}
		sort.Strings(want)
		assert.Equal(t, want, names)
		p := root.Properties
		assert.Equal(t, []string{"type=integer", "minimum=0", "maximum=" + i64max}, keywords(p[tc.position]))
		for _, n := range []string{"sequence", "timestamp"} {
			assert.Equal(t, []string{"type=integer", "minimum=" + i64min, "maximum=" + i64max}, keywords(p[n]), n)
		}
		for _, n := range []string{"messageId", "aggregateId", "aggregateType"} {
			assert.Equal(t, str, keywords(p[n]), n)
		}
		assert.Equal(t, patterned, keywords(p["time"]))
		assert.Equal(t, patterned, keywords(p["extra"]))
		assert.Equal(t, []string{"const"}, keywords(p["snapshot"]))
		assert.Equal(t, []string{"type=array", "minItems", "items"}, keywords(p["metadata"]))

		obj := resolve(p["payload"])
		assert.Equal(t, []string{"type=object", "if", "required", "properties", "additionalProperties=false"}, keywords(obj))
		assert.Equal(t, str, keywords(obj.Properties["type"]))
		assert.Equal(t, str, keywords(obj.Properties["revision"]))
		assert.Equal(t, str, keywords(obj.Properties["data"]))
		assert.Equal(t, []string{"enum"}, keywords(obj.Properties["encoding"]))
		// if encoding is "base64" then data matches the base64 pattern, and nothing else.
		assert.Equal(t, []string{"properties"}, keywords(obj.If))
		assert.Equal(t, []string{"const"}, keywords(obj.If.Properties["encoding"]))
		assert.Equal(t, []any{"base64"}, obj.If.Properties["encoding"].Constant)
		assert.Equal(t, []string{"properties"}, keywords(obj.Then))
		assert.Equal(t, patterned, keywords(obj.Then.Properties["data"]))
		assert.Nil(t, obj.Else)

		meta := resolve(resolve(p["metadata"]).Items2020)
		assert.Equal(t, []string{"type=object", "minProperties", "maxProperties", "required", "properties", "additionalProperties=false"}, keywords(meta))
		assert.Equal(t, str, keywords(meta.Properties["key"]))
		assert.Equal(t, str, keywords(meta.Properties["text"]))
		assert.Equal(t, patterned, keywords(meta.Properties["number"]))
		assert.Equal(t, patterned, keywords(meta.Properties["double"]))
		assert.Equal(t, []string{"type=boolean"}, keywords(meta.Properties["boolean"]))
		assert.Equal(t, []string{"const"}, keywords(meta.Properties["none"]))
		assert.Same(t, obj, resolve(meta.Properties["bytes"]))
		assert.Len(t, meta.Properties, 7)
	}
}

// TestProjectionSound mutates valid records at random and checks that a record and its projection are
// always both valid or both invalid.
func TestProjectionSound(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	values := []any{"", "x", "AA==", "A", "1970-01-01T00:00:00.000Z", "2024-13-01T00:00:00.000Z", "NaN", "-0", "+1", "01",
		json.Number("0"), json.Number("-1"), json.Number("9223372036854775807"), json.Number("9223372036854775808"), json.Number("1.5"),
		true, false, nil, []any{}, map[string]any{}, "text", "base64", "hex"}
	for _, tc := range []struct {
		v    *RecordValidator
		line string
	}{{NewEventValidator(), goodEvent}, {NewSnapshotValidator(), goodSnapshot}} {
		valid, invalid := 0, 0
		for i := 0; i < 3000; i++ {
			var doc any
			_, err := json.Parse([]byte(tc.line), &doc, json.UseNumber)
			require.NoError(t, err)
			for k := rng.Intn(3) + 1; k > 0; k-- {
				mutate(rng, doc, values)
			}
			direct := tc.v.schema.Validate(doc) == nil
			projected := tc.v.schema.Validate(tc.v.project(doc)) == nil
			b, _ := json.Marshal(doc)
			require.Equal(t, direct, projected, "%s", b)
			require.Equal(t, direct, tc.v.Validate(doc) == nil, "%s", b)
			if direct {
				valid++
			} else {
				invalid++
			}
		}
		assert.Greater(t, valid, 100)
		assert.Greater(t, invalid, 100)
	}
}

// mutate replaces, adds or deletes one value somewhere in doc.
func mutate(rng *rand.Rand, doc any, values []any) {
	switch v := doc.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(keys) == 0 || rng.Intn(6) == 0 {
			v[[]string{"token", "time", "extra", "snapshot", "payload", "none", "data", "x"}[rng.Intn(8)]] = values[rng.Intn(len(values))]
			return
		}
		k := keys[rng.Intn(len(keys))]
		switch {
		case rng.Intn(8) == 0:
			delete(v, k)
		case rng.Intn(2) == 0:
			mutate(rng, v[k], values)
		default:
			v[k] = values[rng.Intn(len(values))]
		}
	case []any:
		if len(v) == 0 {
			return
		}
		i := rng.Intn(len(v))
		if rng.Intn(2) == 0 {
			mutate(rng, v[i], values)
		} else {
			v[i] = values[rng.Intn(len(values))]
		}
	}
}

func BenchmarkValidateLine(b *testing.B) {
	v := NewEventValidator()
	line := []byte(goodEvent)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := v.ValidateLine(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateUncached(b *testing.B) {
	var doc any
	json.Parse([]byte(goodEvent), &doc, json.UseNumber)
	s := Event()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := s.Validate(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// A number the schema library cannot take (math/big fails on an exponent of millions and panics; a huge
// negative exponent costs unbounded time) is refused as out of range, never handed to it. Found by
// FuzzEventJSON.
func TestHostileNumbers(t *testing.T) {
	v := NewEventValidator()
	for _, n := range []string{"-621355e6800001", "1e-9000000", "1e10000000", "1" + strings.Repeat("0", 60)} {
		line := `{"token":0,"messageId":"","timestamp":` + n + `}`
		err := v.ValidateLine([]byte(line))
		require.Error(t, err, n)
		assert.Contains(t, err.Error(), "out of range", n)
	}
	assert.NoError(t, checkNumbers(map[string]any{"a": []any{json.Number("-9223372036854775808"), json.Number("1.5e-300")}}, ""))
}
