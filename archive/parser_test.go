package archive

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParser checks that a recordParser, reused from line to line, gives what ParseEventJSON and
// ParseSnapshotJSON give, errors included.
func TestParser(t *testing.T) {
	var p recordParser
	for _, r := range append(edgeEvents(0), plainEvents(100, 20)...) {
		line := AppendEventJSON(nil, &r)
		var got, want Record
		if err := p.parseEvent(line, &got); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if err := ParseEventJSON(line, &want); err != nil {
			t.Fatal(err)
		}
		if string(AppendEventJSON(nil, &got)) != string(AppendEventJSON(nil, &want)) {
			t.Fatalf("records differ for %s", line)
		}
		bad := append([]byte(nil), line...)
		bad[len(bad)-2] = ',' // the closing brace
		errGot, errWant := p.parseEvent(bad, &got), ParseEventJSON(bad, &want)
		if errGot == nil || errWant == nil || errGot.Error() != errWant.Error() || !errors.Is(errGot, ErrRecord) {
			t.Fatalf("errors differ for %s: %v, %v", bad, errGot, errWant)
		}
	}
	for _, r := range edgeSnapshots() {
		var got Record
		if err := p.parseSnapshot(AppendSnapshotJSON(nil, &r), &got); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVisitEvent checks that the lent record is the record ParseEvent gives, line after line through one
// recordParser (nothing of an earlier line shows through), that errors are ParseEvent's or fn's, and that
// lending allocates nothing.
func TestVisitEvent(t *testing.T) {
	var p recordParser
	recs := append(edgeEvents(0), plainEvents(100, 20)...)
	// Every record after every other, so that each lent buffer held something else before.
	for _, i := range []int{0, 1} {
		for j := range recs {
			for _, r := range []Record{recs[j], recs[(j+i+1)%len(recs)]} {
				line := AppendEventJSON(nil, &r)
				var got []byte
				require.NoError(t, p.visitEvent(line, func(lent *Record) error {
					got = AppendEventJSON(nil, lent)
					return nil
				}))
				require.Equal(t, string(line), string(got))
			}
		}
	}
	line := AppendEventJSON(nil, &recs[len(recs)-1])
	bad := append([]byte(nil), line...)
	bad[len(bad)-2] = ','
	called := false
	err := p.visitEvent(bad, func(*Record) error { called = true; return nil })
	require.Error(t, err)
	assert.Equal(t, ParseEventJSON(bad, new(Record)).Error(), err.Error())
	assert.False(t, called)
	stop := errors.New("stop")
	assert.Equal(t, stop, p.visitEvent(line, func(*Record) error { return stop }))

	var n int
	allocs := testing.AllocsPerRun(100, func() {
		_ = p.visitEvent(line, func(r *Record) error { n += len(r.MessageID); return nil })
	})
	assert.Zero(t, allocs)
}

func (p *recordParser) parseEvent(line []byte, r *Record) error    { return p.parse(line, r, false) }
func (p *recordParser) parseSnapshot(line []byte, r *Record) error { return p.parse(line, r, true) }

// TestVisitEventJSON checks that the pooled parser lends the record ParseEventJSON gives, with its errors.
func TestVisitEventJSON(t *testing.T) {
	for _, r := range append(edgeEvents(0), plainEvents(100, 20)...) {
		line := AppendEventJSON(nil, &r)
		var got []byte
		require.NoError(t, VisitEventJSON(line, func(lent *Record) error {
			got = AppendEventJSON(nil, lent)
			return nil
		}))
		require.Equal(t, string(line), string(got))
		bad := append([]byte(nil), line...)
		bad[len(bad)-2] = ','
		err := VisitEventJSON(bad, func(*Record) error { return nil })
		require.Error(t, err)
		assert.Equal(t, ParseEventJSON(bad, new(Record)).Error(), err.Error())
	}
}
