package archive

import (
	"encoding/base64"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"
)

// The projection takes the schema's v1 patterns of times, base64 and numbers to match every string it
// would match against them (recordSchema.timeAlways and the others): check that on the edges and on
// random values, and that the shipped schema has those patterns.
func TestKnownPatternsMatch(t *testing.T) {
	for _, stream := range []string{manifest.StreamEvents, manifest.StreamSnapshots} {
		s := newRecordSchema(stream)
		if !s.timeAlways || !s.base64Always || !s.numberAlways {
			t.Fatalf("%s: the schema's patterns are not the v1 ones: %q %q %q", stream, s.timeRE, s.base64RE, s.numberRE)
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		millis := []int64{minRFC3339Millis, maxRFC3339Millis, 0, -1, 1, 951782400000 /* 2000-02-29 */}
		for range 20000 {
			millis = append(millis, minRFC3339Millis+rnd.Int64N(maxRFC3339Millis-minRFC3339Millis+1))
		}
		for _, ms := range millis {
			if v := time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z"); !s.timeRE.MatchString(v) {
				t.Errorf("time %q does not match", v)
			}
		}
		for n := 1; n < 300; n++ {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(rnd.Uint32())
			}
			if v := base64.StdEncoding.EncodeToString(data); !s.base64RE.MatchString(v) {
				t.Errorf("base64 %q does not match", v)
			}
		}
		numbers := []int64{math.MinInt64, math.MaxInt64, 0, -1, 1, -10, 10}
		for range 20000 {
			numbers = append(numbers, int64(rnd.Uint64())>>rnd.IntN(64))
		}
		for _, n := range numbers {
			if v := strconv.FormatInt(n, 10); !s.numberRE.MatchString(v) {
				t.Errorf("number %q does not match", v)
			}
		}
	}
}

// parseDouble takes a shortcut for doubles below the normal range (quickSubnormal): it must give what
// ParseFloat gives, for canonical and other strings alike.
func TestParseDoubleSubnormal(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var strs []string
	add := func(f float64) {
		strs = append(strs, strconv.FormatFloat(f, 'g', -1, 64), strconv.FormatFloat(-f, 'g', -1, 64))
	}
	for _, bits := range []uint64{1, 2, 3, 0x000fffffffffffff, 0x0010000000000000, 0x0010000000000001, 0x0008000000000000} {
		add(math.Float64frombits(bits))
	}
	for range 20000 {
		add(math.Float64frombits(rnd.Uint64() & 0x001fffffffffffff)) // subnormal or just above
	}
	for range 2000 {
		add(math.Float64frombits(rnd.Uint64() & 0x00ffffffffffffff)) // e-3dd and more
	}
	strs = append(strs, "5e-324", "4e-324", "3e-324", "2e-324", "2.5e-324", "2.4703282292062328e-324", "2.4703282292062327e-324",
		"5.0e-324", "05e-324", "5e-0324", "5E-324", "5e-325", "1e-330", "1e-400", "4.9406564584124654e-324", "9.9e-309",
		"2.225073858507201e-308", "2.2250738585072014e-308", "2.2250738585072011e-308", "1e-307", "1.5e-307", "-0e-324",
		"1e-3", "e-324", "-e-324", ".5e-323", "5.e-324", "+5e-324", "5e-32a", "0x1p-1074", "NaNe-324", "Infe-324")
	hits, canonical := 0, 0
	for _, s := range strs {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f != 0 && math.Abs(f) < 0x1p-1022 && strconv.FormatFloat(f, 'g', -1, 64) == s {
			canonical++
			if _, ok := quickSubnormal(s); ok {
				hits++
			}
		}
	}
	if hits < canonical*99/100 || canonical < 10000 {
		t.Errorf("the shortcut took %d of %d canonical subnormals", hits, canonical)
	}
	for _, s := range strs {
		want, werr := strconv.ParseFloat(s, 64)
		if werr == nil && (math.IsInf(want, 0) || math.IsNaN(want)) {
			werr = strconv.ErrRange
		}
		got, gerr := parseDouble(s)
		if (werr == nil) != (gerr == nil) || math.Float64bits(got) != math.Float64bits(want) && werr == nil {
			t.Errorf("parseDouble(%q) = %v (%016x), %v; ParseFloat: %v (%016x), %v", s, got, math.Float64bits(got), gerr, want, math.Float64bits(want), werr)
		}
	}
}
