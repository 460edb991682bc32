package archive

import (
	"errors"
	"testing"
)

// TestParser checks that a Parser, reused from line to line, gives what ParseEventJSON and
// ParseSnapshotJSON give, errors included.
func TestParser(t *testing.T) {
	var p Parser
	for _, r := range append(edgeEvents(0), plainEvents(100, 20)...) {
		line := AppendEventJSON(nil, &r)
		var got, want Record
		if err := p.ParseEvent(line, &got); err != nil {
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
		errGot, errWant := p.ParseEvent(bad, &got), ParseEventJSON(bad, &want)
		if errGot == nil || errWant == nil || errGot.Error() != errWant.Error() || !errors.Is(errGot, ErrRecord) {
			t.Fatalf("errors differ for %s: %v, %v", bad, errGot, errWant)
		}
	}
	for _, r := range edgeSnapshots() {
		var got Record
		if err := p.ParseSnapshot(AppendSnapshotJSON(nil, &r), &got); err != nil {
			t.Fatal(err)
		}
	}
}
