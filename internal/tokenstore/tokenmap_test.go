package tokenstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A renumbered import of archive tokens 10, 11, 14, 15 (12 and 13 filtered out) into a target whose
// head was 99.
const sampleMap = "# axarchive token map: archive-token target-token\n# target head before the import: 99\n10 100\n11 101\n14 102\n15 103\n"

func TestTokenMapTargets(t *testing.T) {
	m, err := readTokenMap("m", strings.NewReader(sampleMap), []int64{5, 9, 10, 11, 12, 13, 14, 15, 16, 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[int64]int64{
		// Nothing of the import handled: the target's head before it.
		5: 99, 9: 99,
		10: 100, 11: 101,
		// 12 and 13 were left out. The processor at 12 has handled 11 and not 14: it goes where 11 went
		// (101), so that it reads on from 102 = archive 14. The next listed token's target (102) would
		// make it skip archive 14.
		12: 101, 13: 101,
		14: 102, 15: 103,
		// Past the archive: everything in it handled.
		16: 103, 1 << 40: 103,
	} {
		if got := m.Target(p); got != want {
			t.Errorf("position %d → %d, want %d", p, got, want)
		}
	}
	for p, want := range map[int64]bool{10: true, 12: false, 15: true, 16: false} {
		if m.Listed(p) != want {
			t.Errorf("Listed(%d) = %v", p, !want)
		}
	}
}

func TestTokenMapRefuses(t *testing.T) {
	for _, tc := range []struct{ in, says string }{
		{"10 100\n", "not an axarchive token map"},
		{"# axarchive token map: archive-token target-token\n10 100\n", "no head line"},
		{"# axarchive token map: archive-token target-token\n# target head before the import: 99\n10 101\n", "target token 101 where 100 was due"},
		{"# axarchive token map: archive-token target-token\n# target head before the import: 99\n10 100\n10 101\n", "archive token 10 after 10"},
		{"# axarchive token map: archive-token target-token\n# target head before the import: 99\n10 x\n", "want two tokens"},
		{"# axarchive token map: archive-token target-token\n# target head before the import: 99\n" + strings.Repeat("1", 5000) + "\n", "longer than"},
	} {
		_, err := readTokenMap("m", strings.NewReader(tc.in), []int64{10})
		if !errors.Is(err, ErrTokenMap) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.says)
		}
	}
}

func FuzzTokenMap(f *testing.F) {
	f.Add([]byte(sampleMap), int64(12))
	f.Add([]byte("# axarchive token map: archive-token target-token\n# target head before the import: -1\n0 0\n"), int64(-1))
	f.Fuzz(func(t *testing.T, data []byte, p int64) {
		m, err := readTokenMap("m", strings.NewReader(string(data)), []int64{p, p + 1})
		if err != nil {
			if !errors.Is(err, ErrTokenMap) {
				t.Fatalf("error without a kind: %v", err)
			}
			return
		}
		// A later position never goes to an earlier target.
		if p < 1<<62 && m.Target(p+1) < m.Target(p) {
			t.Fatalf("%d → %d but %d → %d", p, m.Target(p), p+1, m.Target(p+1))
		}
		if m.Target(p) < m.HeadBefore {
			t.Fatalf("%d → %d, before the head %d", p, m.Target(p), m.HeadBefore)
		}
	})
}

func FuzzBackup(f *testing.F) {
	f.Add([]byte(`{"format":"axarchive tokens backup","version":1,"created":"x","table":"t","rows":[{"processor":"p","segment":0,"mask":null,"tokenType":"org.axonframework.eventhandling.GlobalSequenceTrackingToken","token":"e30=","timestamp":null,"owner":null}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, rows, err := parseBackup("b", data)
		if err != nil {
			if !errors.Is(err, ErrBackup) {
				t.Fatalf("error without a kind: %v", err)
			}
			return
		}
		for _, r := range rows {
			if r.Processor == "" || r.Processor == ConfigProcessor {
				t.Fatalf("accepted row %s", r)
			}
		}
	})
}

// BenchmarkReadTokenMap reads a map of a million events (16 MB) for a hundred positions: memory does not
// grow with the map.
func BenchmarkReadTokenMap(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("# axarchive token map: archive-token target-token\n# target head before the import: 999\n")
	for a := int64(0); a < 1_000_000; a++ {
		fmt.Fprintf(&sb, "%d %d\n", 2*a, 1000+a)
	}
	data := sb.String()
	var positions []int64
	for i := int64(0); i < 100; i++ {
		positions = append(positions, i*19_999)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := readTokenMap("m", strings.NewReader(data), positions); err != nil {
			b.Fatal(err)
		}
	}
}
