package archive

import (
	"encoding/base64"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// The projection takes the schema's v1 patterns of times, base64 and numbers to match every string it
// would match against them (recordSchema.timeAlways and the others): check that on the edges and on
// random values, and that the shipped schema has those patterns.
func TestKnownPatternsMatch(t *testing.T) {
	for _, stream := range []string{StreamEvents, StreamSnapshots} {
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
