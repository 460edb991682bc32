package jsonline

import "testing"

// TestNeedsEscape8 checks the word test against the byte test for every pair of byte values at every pair
// of positions in a word.
func TestNeedsEscape8(t *testing.T) {
	special := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' }
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			for pos := 0; pos < 8; pos++ {
				var w [8]byte
				for i := range w {
					w[i] = 'a'
				}
				w[pos] = byte(a)
				w[(pos+3)%8] = byte(b)
				var x uint64
				for i := 7; i >= 0; i-- {
					x = x<<8 | uint64(w[i])
				}
				want := false
				for _, c := range w {
					want = want || special(c)
				}
				if needsEscape8(x) != want {
					t.Fatalf("%v: got %v", w, !want)
				}
			}
		}
	}
}
