package main

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestInterspersed(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	for _, tc := range []struct{ in, want string }{
		{"axarchive verify DIR --quick", "axarchive verify --quick DIR"},
		{"axarchive cat DIR --to-token 5 --snapshots", "axarchive cat --to-token 5 --snapshots DIR"},
		{"axarchive cat DIR --to-token=5", "axarchive cat --to-token=5 DIR"},
		{"axarchive cat DIR --from-token -1", "axarchive cat --from-token -1 DIR"},
		{"axarchive import A B --server h:1 --resume", "axarchive import --server h:1 --resume A B"},
		{"axarchive cat --snapshots DIR", "axarchive cat --snapshots DIR"},
		{"axarchive cat DIR --bogus", "axarchive cat DIR --bogus"},
		{"axarchive cat -- DIR --snapshots", "axarchive cat -- DIR --snapshots"},
		{"axarchive cat - --snapshots", "axarchive cat --snapshots -"},
		{"axarchive --help", "axarchive --help"},
		{"axarchive nosuchcommand x --y", "axarchive nosuchcommand x --y"},
		{"axarchive", "axarchive"},
		{"axarchive tokens check --db u A B --json x", "axarchive tokens check --db u A B --json x"},
		{"axarchive tokens check A --db u B --server h:1", "axarchive tokens check --db u --server h:1 A B"},
		{"axarchive tokens restore B --db u", "axarchive tokens restore --db u B"},
		{"axarchive tokens nosuch --db u", "axarchive tokens nosuch --db u"},
	} {
		got := strings.Join(interspersed(app, strings.Fields(tc.in)), " ")
		assert.Equal(t, tc.want, got, tc.in)
	}
}
